// dicomportal front-end glue. No inline scripts anywhere (the CSP forbids them).
(function () {
  "use strict";

  function showToast(message, category) {
    var region = document.getElementById("toasts");
    if (!region) return;
    var toast = document.createElement("div");
    toast.className = "toast toast-" + (category || "success");
    toast.setAttribute("role", "status");
    toast.textContent = message;
    region.appendChild(toast);
    setTimeout(function () { toast.remove(); }, 6000);
  }

  // Servers send `HX-Trigger: {"toast": {"message": "...", "category": "success"}}`.
  document.addEventListener("toast", function (event) {
    var detail = event.detail || {};
    showToast(detail.message || detail.value, detail.category);
  });

  // Flashed toasts fade after a while; they stay in the DOM for screen readers until then.
  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("#toasts .toast").forEach(function (toast) {
      setTimeout(function () { toast.remove(); }, 8000);
    });
  });

  // htmx does not swap 4xx/5xx answers by default; show their message as a toast instead.
  document.addEventListener("htmx:responseError", function (event) {
    var xhr = event.detail.xhr;
    if (xhr.status === 422) return; // validation: the form partial is swapped in (see htmx:beforeSwap)
    showToast(xhr.status === 429 ? "Too many attempts. Please wait a minute." : "Something went wrong. Nothing was changed.", "error");
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    if (event.detail.xhr.status === 422) {
      event.detail.shouldSwap = true;
      event.detail.isError = false;
    }
  });
})();
