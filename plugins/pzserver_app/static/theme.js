// Light or dark mode, set on <html data-theme> before the page paints: the user's choice made with the
// toggle here (localStorage "pzserver-theme"), else the Airflow UI's own choice (its "theme" key, same
// origin), else the system's colour scheme (the stylesheet's default). Loaded in <head>, not deferred.
(function () {
  "use strict";
  var OWN_KEY = "pzserver-theme";
  var AIRFLOW_KEY = "theme";
  var root = document.documentElement;
  var systemDark = window.matchMedia("(prefers-color-scheme: dark)");

  function read(key) {
    try {
      var value = window.localStorage.getItem(key);
      return value === "light" || value === "dark" ? value : null;
    } catch (error) {
      return null; // storage unavailable: follow the system
    }
  }

  function chosen() {
    return read(OWN_KEY) || read(AIRFLOW_KEY);
  }

  function effective() {
    return chosen() || (systemDark.matches ? "dark" : "light");
  }

  function label() {
    var button = document.getElementById("theme-toggle");
    if (!button) return;
    var next = effective() === "dark" ? "light" : "dark";
    button.setAttribute("aria-label", "Switch to " + next + " mode");
    button.setAttribute("title", "Switch to " + next + " mode");
    button.setAttribute("data-theme-now", effective());
  }

  function apply() {
    var theme = chosen();
    if (theme) root.setAttribute("data-theme", theme);
    else root.removeAttribute("data-theme");
    label();
  }

  function toggle() {
    var next = effective() === "dark" ? "light" : "dark";
    try {
      window.localStorage.setItem(OWN_KEY, next);
    } catch (error) {
      root.setAttribute("data-theme", next); // not remembered, but shown
      label();
      return;
    }
    apply();
  }

  apply();
  systemDark.addEventListener("change", apply);
  window.addEventListener("storage", function (event) {
    if (event.key === OWN_KEY || event.key === AIRFLOW_KEY) apply();
  });
  document.addEventListener("DOMContentLoaded", function () {
    var button = document.getElementById("theme-toggle");
    if (button) button.addEventListener("click", toggle);
    label();
  });
})();
