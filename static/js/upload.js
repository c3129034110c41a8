// The upload form with a real progress bar: XMLHttpRequest's upload progress events.
// Without JavaScript the same form posts normally. The server answers an upload that works with
// 204 + HX-Redirect (the list), and a refused one with the form again (status 413/422/503).
(function () {
  "use strict";

  var MB = 1024 * 1024;

  function size(bytes) {
    if (bytes >= 1024 * MB) return (bytes / (1024 * MB)).toFixed(1) + " GB";
    if (bytes >= MB) return (bytes / MB).toFixed(1) + " MB";
    return Math.max(1, Math.round(bytes / 1024)) + " KB";
  }

  function chosenFiles(form) {
    var files = [];
    form.querySelectorAll('input[type="file"]').forEach(function (input) {
      Array.prototype.forEach.call(input.files, function (file) {
        // A folder's files keep their path inside the folder (messages name them by it).
        files.push({ file: file, name: file.webkitRelativePath || file.name });
      });
    });
    return files;
  }

  function showError(form, message) {
    var box = form.querySelector("#upload-error");
    if (!box) {
      box = document.createElement("div");
      box.id = "upload-error";
      box.className = "banner banner-error";
      box.setAttribute("role", "alert");
      form.insertBefore(box, form.firstElementChild.nextSibling);
    }
    box.textContent = message;
  }

  function replaceForm(form, html, status) {
    var holder = document.createElement("div");
    holder.innerHTML = html;
    var fresh = holder.querySelector("#upload-form");
    if (fresh) {
      form.replaceWith(fresh);
      return;
    }
    // An answer from something in front of the portal (a proxy's own 413 or 502 page).
    setBusy(form, false);
    form.querySelector("#upload-progress").hidden = true;
    showError(form, status === 413
      ? "This upload is larger than the server accepts. Upload it in parts."
      : "The upload failed. Nothing was stored; please try again.");
  }

  function setBusy(form, busy) {
    form.querySelector("#upload-submit").disabled = busy;
    form.querySelectorAll('input[type="file"]').forEach(function (input) { input.disabled = busy; });
  }

  function send(form) {
    var chosen = chosenFiles(form);
    var total = chosen.reduce(function (sum, item) { return sum + item.file.size; }, 0);
    if (!chosen.length) return showError(form, "Choose DICOM files, a folder or a zip of them to upload.");
    if (total > Number(form.dataset.maxBytes)) {
      return showError(form, "This upload is " + size(total) + "; the limit for one upload is " +
        size(Number(form.dataset.maxBytes)) + ". Upload it in parts.");
    }
    var data = new FormData();
    data.append("csrf_token", form.querySelector('input[name="csrf_token"]').value);
    chosen.forEach(function (item) { data.append("files", item.file, item.name); });

    var progress = form.querySelector("#upload-progress");
    var bar = form.querySelector("#upload-bar");
    var status = form.querySelector("#upload-status");
    progress.hidden = false;
    setBusy(form, true);

    var xhr = new XMLHttpRequest();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("HX-Request", "true");
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) return;
      var percent = Math.floor((event.loaded / event.total) * 100);
      bar.value = percent;
      status.textContent = "Sending " + size(event.loaded) + " of " + size(event.total) + " (" + percent + "%)";
    });
    xhr.upload.addEventListener("load", function () {
      bar.removeAttribute("value"); // indeterminate while the server checks and stores the files
      status.textContent = "Checking and storing " + chosen.length + (chosen.length === 1 ? " file…" : " files…");
    });
    xhr.addEventListener("load", function () {
      // Stored (204) or logged out meanwhile (401): the server says where to go.
      var target = xhr.getResponseHeader("HX-Redirect");
      if (target) {
        window.location.assign(target);
      } else {
        replaceForm(form, xhr.responseText, xhr.status);
      }
    });
    xhr.addEventListener("error", function () {
      setBusy(form, false);
      progress.hidden = true;
      showError(form, "The connection was lost during the upload. Nothing was stored; please try again.");
    });
    xhr.send(data);
  }

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || form.id !== "upload-form") return;
    event.preventDefault();
    send(form);
  });
})();
