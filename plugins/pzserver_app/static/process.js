// A process page of a run that has not ended reloads itself every few seconds, unless the user is typing
// or the stop button has the focus (a reload would take it away).
(function () {
  "use strict";

  var head = document.querySelector("[data-refresh-seconds]");
  if (!head) return;
  var seconds = Number(head.getAttribute("data-refresh-seconds")) || 5;
  function reload() {
    var active = document.activeElement;
    if (active && active !== document.body && active.tagName !== "A") {
      window.setTimeout(reload, seconds * 1000);
      return;
    }
    window.location.reload();
  }
  window.setTimeout(reload, seconds * 1000);
})();
