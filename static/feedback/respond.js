/* Respondent form: hide questions whose skip-logic condition depends on an answer on the same page.
   Progressive enhancement only; the server applies the same rules (feedback.answers.is_shown). */
(function () {
  "use strict";
  var YES = { yes: 1, y: 1, "true": 1, si: 1, "sí": 1 };
  var NO = { no: 1, n: 1, "false": 1 };
  function norm(v) {
    var s = String(v).trim().toLowerCase();
    if (YES[s]) return "1";
    if (NO[s]) return "0";
    var n = Number(s);
    return s !== "" && isFinite(n) ? String(n) : String(v).trim();
  }
  function valuesOf(form, key) {
    var out = [];
    var inputs = form.querySelectorAll('[name="q-' + key + '"]');
    for (var i = 0; i < inputs.length; i++) {
      var el = inputs[i];
      if ((el.type === "radio" || el.type === "checkbox") && !el.checked) continue;
      if (el.disabled || el.value === "") continue;
      out.push(el.value);
    }
    return out;
  }
  function holds(cond, actual) {
    if (!actual.length) return false;
    var normed = actual.map(norm);
    var op = cond.op || "eq";
    var expected = cond.value;
    if (op === "eq") return normed.indexOf(norm(expected)) !== -1;
    if (op === "ne") return normed.indexOf(norm(expected)) === -1;
    if (op === "in") {
      var list = Array.isArray(expected) ? expected : [expected];
      return list.some(function (v) { return normed.indexOf(norm(v)) !== -1; });
    }
    if (op === "lte" || op === "gte") {
      var n = Number(actual[0]);
      var bound = Number(expected);
      if (!isFinite(n) || !isFinite(bound)) return false;
      return op === "lte" ? n <= bound : n >= bound;
    }
    return false;
  }
  function apply(form) {
    var items = form.querySelectorAll("[data-show-if]");
    for (var i = 0; i < items.length; i++) {
      var box = items[i];
      var cond;
      try { cond = JSON.parse(box.getAttribute("data-show-if")); } catch (e) { continue; }
      if (!cond || !form.querySelector('[name="q-' + cond.question + '"]')) continue;
      var show = holds(cond, valuesOf(form, cond.question));
      box.hidden = !show;
      var inputs = box.querySelectorAll("input, textarea, select");
      for (var j = 0; j < inputs.length; j++) inputs[j].disabled = !show;
    }
  }
  function init() {
    var form = document.querySelector('form[data-testid="survey-form"]');
    if (!form) return;
    form.addEventListener("change", function () { apply(form); });
    apply(form);
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", init);
  else init();
})();
