// The Pipelines page: the input pickers' search box and official/own filter hide the options that do not
// match (a chosen option always stays visible), and say how many are shown.
(function () {
  "use strict";

  function filterPicker(picker) {
    var terms = picker.querySelector(".picker-search").value.trim().toLowerCase().split(/\s+/).filter(Boolean);
    var kind = picker.querySelector(".picker-kind").value;
    var options = picker.querySelectorAll(".picker-list option");
    var shown = 0;
    options.forEach(function (option) {
      var text = option.getAttribute("data-search");
      var matches = (!kind || option.getAttribute("data-kind") === kind) &&
        terms.every(function (term) { return text.indexOf(term) !== -1; });
      option.hidden = !(matches || option.selected);
      if (!option.hidden) shown += 1;
    });
    picker.querySelector(".picker-count").textContent = shown + " of " + options.length + " shown.";
  }

  document.querySelectorAll("fieldset.picker").forEach(function (picker) {
    picker.querySelector(".picker-search").addEventListener("input", function () { filterPicker(picker); });
    picker.querySelector(".picker-kind").addEventListener("change", function () { filterPicker(picker); });
    filterPicker(picker);
  });
})();
