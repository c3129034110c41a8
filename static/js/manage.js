// The cancel dialog: a native <dialog> swapped in by htmx. Open it modally with focus on its title,
// give focus back to the button that opened it when it closes (Escape closes a modal dialog).
(function () {
  "use strict";
  var opener = null;

  document.addEventListener("htmx:beforeRequest", function (event) {
    if (event.detail.target && event.detail.target.id === "dialog-slot") opener = event.detail.elt;
  });

  document.addEventListener("htmx:afterSwap", function (event) {
    var dialog = event.detail.target.querySelector && event.detail.target.querySelector("dialog");
    if (!dialog || dialog.open) return;
    dialog.addEventListener("close", function () {
      dialog.remove();
      var back = document.getElementById("open-cancel-dialog") || opener;
      if (back) back.focus();
    });
    dialog.showModal();
    var title = dialog.querySelector("[tabindex='-1']");
    if (title) title.focus();
  });

  // After an option is confirmed inside the dialog, its result shows a Close button.
  document.addEventListener("htmx:afterSettle", function (event) {
    var dialog = document.getElementById("cancel-dialog");
    if (!dialog) return;
    var close = dialog.querySelector("#dialog-result [data-close-dialog]");
    if (close) {
      close.hidden = false;
      dialog.querySelectorAll(".cancel-options, .close-dialog").forEach(function (el) { el.remove(); });
      close.focus();
    }
  });

  document.addEventListener("click", function (event) {
    var button = event.target.closest && event.target.closest("[data-close-dialog]");
    var dialog = button && button.closest("dialog");
    if (dialog) dialog.close();
  });
})();
