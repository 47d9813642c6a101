/* Small behaviours the templates ask for with data- attributes, because the Content-Security-Policy
   runs no inline handlers (onclick=, onsubmit=):
   - <form data-disable-on-submit>: its buttons are disabled once it is sent (no double redeem);
   - <button data-print>: prints the page. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.hasAttribute("data-disable-on-submit")) {
      return;
    }
    form.querySelectorAll("button").forEach(function (button) {
      button.disabled = true;
    });
  });

  document.addEventListener("click", function (event) {
    var target = event.target instanceof Element ? event.target.closest("[data-print]") : null;
    if (target) {
      window.print();
    }
  });
})();
