/* Alignment dashboards: draw every plotly panel whose figure JSON the server put in
   <script type="application/json" id="chart-…">, with a modebar whose camera button saves a PNG
   named after the panel. Runs on load and after every htmx swap (filter changes, a panel's own
   polling), so the page needs no inline script. */
(function () {
  "use strict";

  function draw(root) {
    if (typeof window.Plotly === "undefined") {
      return;
    }
    root.querySelectorAll("[data-chart]").forEach(function (target) {
      if (target.getAttribute("data-drawn") === "1") {
        return;
      }
      var source = document.getElementById(target.getAttribute("data-chart"));
      if (!source) {
        return;
      }
      var figure = JSON.parse(source.textContent);
      target.setAttribute("data-drawn", "1");
      window.Plotly.newPlot(target, figure.data || [], figure.layout || {}, {
        responsive: true,
        displaylogo: false,
        displayModeBar: true,
        modeBarButtonsToRemove: ["select2d", "lasso2d"],
        toImageButtonOptions: {
          format: "png",
          filename: target.getAttribute("data-filename") || "chart",
          scale: 2,
        },
      });
    });
  }

  function purge(root) {
    if (typeof window.Plotly === "undefined" || !root || !root.querySelectorAll) {
      return;
    }
    root.querySelectorAll("[data-chart][data-drawn='1']").forEach(function (target) {
      window.Plotly.purge(target);
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    draw(document);
  });
  document.addEventListener("htmx:beforeSwap", function (event) {
    purge(event.detail && event.detail.target);
  });
  // An outerHTML swap replaces the element the event names, so look at the whole document:
  // only charts not drawn yet (the new ones) are drawn.
  document.addEventListener("htmx:afterSettle", function () {
    draw(document);
  });
})();
