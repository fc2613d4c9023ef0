// MsGine console: small progressive enhancements; every page works without this file.
"use strict";

function copyButtons() {
  document.querySelectorAll("button[data-copy]").forEach(function (button) {
    button.addEventListener("click", function () {
      var source = document.getElementById(button.getAttribute("data-copy"));
      if (!source || !navigator.clipboard) { return; }
      navigator.clipboard.writeText(source.innerText.trim()).then(function () {
        var label = button.textContent;
        button.textContent = "Copied";
        setTimeout(function () { button.textContent = label; }, 2000);
      }, function () { button.textContent = "Select the text and copy it"; });
    });
  });
}

function confirmations() {
  document.querySelectorAll("form[data-confirm]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.getAttribute("data-confirm"))) { event.preventDefault(); }
    });
  });
}

function reveals() {
  document.querySelectorAll("form[data-reveal]").forEach(function (form) {
    form.addEventListener("submit", function (event) {
      event.preventDefault();
      fetch(form.action, {
        method: "POST",
        body: new URLSearchParams(new FormData(form)),
        headers: { "Accept": "application/json" },
        credentials: "same-origin"
      }).then(function (response) {
        return response.ok ? response.json() : null;
      }).then(function (answer) {
        var shown = form.previousElementSibling;
        if (answer && answer.number && shown && shown.hasAttribute("data-phone")) {
          shown.textContent = answer.number;
          shown.classList.add("revealed");
          form.remove();
        }
      });
    });
  });
}

document.addEventListener("DOMContentLoaded", function () {
  copyButtons();
  confirmations();
  reveals();
});
