// Shared by the pages: calls to the PZ Server REST API with the Airflow session cookie (same origin), and
// the product page's actions (share link, delete). Changes go through the API, never through page routes.
(function () {
  "use strict";

  var apiRoot = document.body.getAttribute("data-api");

  // fetch() on the API; resolves with the parsed JSON (or null), rejects with an Error carrying the
  // server's message ("detail") and the response status and body.
  function api(path, options) {
    var settings = Object.assign({ credentials: "same-origin", headers: {} }, options || {});
    settings.headers = Object.assign({ Accept: "application/json" }, settings.headers);
    if (settings.json !== undefined) {
      settings.body = JSON.stringify(settings.json);
      settings.headers["Content-Type"] = "application/json";
      delete settings.json;
    }
    return fetch(apiRoot + path, settings).then(function (response) {
      return response.text().then(function (text) {
        var body = null;
        try {
          body = text ? JSON.parse(text) : null;
        } catch (error) {
          body = { detail: text };
        }
        if (!response.ok) {
          var message = body && body.detail ? body.detail : response.status + " " + response.statusText;
          if (response.status === 401) message += " (your Airflow session ended: reload the page to log in again)";
          var failure = new Error(message);
          failure.status = response.status;
          failure.body = body;
          throw failure;
        }
        return body;
      });
    });
  }

  function showError(element, error) {
    if (!element) return;
    element.textContent = error ? (error.message || String(error)) : "";
    element.hidden = !error;
  }

  window.pz = { api: api, showError: showError };

  function copyText(input) {
    input.focus();
    input.select();
    // The Airflow UI frames the pages without clipboard permission: fall back to the selection.
    if (navigator.clipboard && window.isSecureContext) {
      return navigator.clipboard.writeText(input.value).then(
        function () { return true; },
        function () { return document.execCommand("copy"); }
      );
    }
    return Promise.resolve(document.execCommand("copy"));
  }

  function productActions() {
    var bar = document.querySelector("[data-product-id]");
    if (!bar) return;
    var productId = bar.getAttribute("data-product-id");

    var copy = document.getElementById("copy-share-link");
    var shareLink = document.getElementById("share-link");
    var shareStatus = document.getElementById("share-status");
    if (copy && shareLink) {
      copy.addEventListener("click", function () {
        copyText(shareLink).then(function (copied) {
          shareStatus.textContent = copied ? "Copied" : "Selected: copy it with Ctrl+C";
        });
      });
      shareLink.addEventListener("focus", function () { shareLink.select(); });
    }

    var remove = document.getElementById("delete-product");
    if (!remove) return;
    var confirmBox = document.getElementById("delete-confirm");
    var confirmed = document.getElementById("delete-confirmed");
    var cancelled = document.getElementById("delete-cancelled");
    var errorBox = document.getElementById("delete-error");
    // An in-page confirmation: the Airflow UI's iframe does not allow confirm() dialogs.
    remove.addEventListener("click", function () {
      confirmBox.hidden = false;
      remove.hidden = true;
      confirmed.focus();
    });
    cancelled.addEventListener("click", function () {
      confirmBox.hidden = true;
      remove.hidden = false;
      remove.focus();
    });
    confirmed.addEventListener("click", function () {
      confirmed.disabled = true;
      showError(errorBox, null);
      api("products/" + productId + "/", { method: "DELETE" }).then(
        function () { window.location.assign(bar.getAttribute("data-after-delete")); },
        function (error) {
          confirmed.disabled = false;
          showError(errorBox, error);
        }
      );
    });
  }

  document.addEventListener("DOMContentLoaded", productActions);
})();
