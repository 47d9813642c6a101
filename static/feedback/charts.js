/* Draw the plotly charts whose figure JSON the server put in <script type="application/json">.
   Runs on load and after every htmx swap, so filter changes redraw without inline scripts. */
(function () {
  "use strict";

  function draw(root) {
    if (typeof window.Plotly === "undefined") {
      return;
    }
    root.querySelectorAll("[data-chart]").forEach(function (target) {
      var source = document.getElementById(target.getAttribute("data-chart"));
      if (!source) {
        return;
      }
      var figure = JSON.parse(source.textContent);
      window.Plotly.newPlot(target, figure.data || [], figure.layout || {}, {
        responsive: true,
        displaylogo: false,
      });
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
  });
  document.addEventListener("htmx:afterSettle", function (event) {
    draw(event.target);
  });
})();
