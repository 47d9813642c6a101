/*! CEM feedback pop-up. No dependencies. Embed with:
 *  <script src="https://<cem host>/static/feedback/widget.js" data-survey-key="<public key>"
 *          data-trigger="load|exit|after:10" data-lang="es" async></script>
 * The host page's origin must be listed in the survey's allowed origins.
 * A device token (issued by the server, signed) is kept in this site's localStorage, because
 * third-party cookies are often blocked; it limits answers to one per device, survey and day.
 */
(function () {
  "use strict";
  var script = document.currentScript;
  if (!script) return;
  var key = script.getAttribute("data-survey-key");
  if (!key) return;
  var trigger = (script.getAttribute("data-trigger") || "load").trim();
  var base = new URL(script.src, document.baseURI).origin + "/r/w/" + encodeURIComponent(key);
  var storeKey = "cem-feedback:" + key;
  var lang = script.getAttribute("data-lang") || navigator.language || "";

  function load() {
    try { return JSON.parse(window.localStorage.getItem(storeKey) || "{}") || {}; } catch (e) { return {}; }
  }
  function save(data) {
    try { window.localStorage.setItem(storeKey, JSON.stringify(data)); } catch (e) { /* private mode */ }
  }
  function today() { return new Date().toISOString().slice(0, 10); }

  var stored = load();
  if (stored.answered === today() || stored.dismissed === today()) return;

  function el(tag, attrs, text) {
    var node = document.createElement(tag);
    for (var name in attrs || {}) {
      if (name === "style") {
        for (var prop in attrs.style) node.style[prop] = attrs.style[prop];
      } else {
        node.setAttribute(name, attrs[name]);
      }
    }
    if (text != null) node.textContent = text;
    return node;
  }

  var NORM_YES = { yes: 1, y: 1, "true": 1, si: 1, "sí": 1 };
  var NORM_NO = { no: 1, n: 1, "false": 1 };
  function norm(v) {
    var s = String(v).trim().toLowerCase();
    if (NORM_YES[s]) return "1";
    if (NORM_NO[s]) return "0";
    var n = Number(s);
    return s !== "" && isFinite(n) ? String(n) : String(v).trim();
  }
  function shown(q, answers) {
    var c = q.show_if;
    if (!c) return true;
    var v = answers[c.question];
    if (v == null || v === "" || (Array.isArray(v) && !v.length)) return false;
    var actual = (Array.isArray(v) ? v : [v]).map(norm);
    var op = c.op || "eq";
    if (op === "eq") return actual.indexOf(norm(c.value)) !== -1;
    if (op === "ne") return actual.indexOf(norm(c.value)) === -1;
    if (op === "in") {
      return (Array.isArray(c.value) ? c.value : [c.value]).some(function (x) { return actual.indexOf(norm(x)) !== -1; });
    }
    if (op === "lte" || op === "gte") {
      var n = Number(v), b = Number(c.value);
      if (!isFinite(n) || !isFinite(b)) return false;
      return op === "lte" ? n <= b : n >= b;
    }
    return false;
  }

  function render(survey) {
    var t = survey.texts;
    var uid = "cem-fb-" + Math.random().toString(36).slice(2, 8);
    var overlay = el("div", { style: {
      position: "fixed", inset: "0", background: "rgba(0,0,0,0.35)", zIndex: "2147483646",
      display: "flex", alignItems: "flex-end", justifyContent: "center", padding: "1rem",
      fontFamily: "system-ui, -apple-system, Segoe UI, Roboto, sans-serif", fontSize: "16px"
    } });
    var box = el("div", { role: "dialog", "aria-modal": "true", "aria-labelledby": uid + "-title", style: {
      background: "#fff", color: "#1b1b1b", borderRadius: "12px", maxWidth: "28rem", width: "100%",
      maxHeight: "85vh", overflowY: "auto", padding: "1.25rem", boxShadow: "0 10px 30px rgba(0,0,0,0.25)"
    } });
    var close = el("button", { type: "button", "aria-label": t.close, style: {
      float: "right", border: "0", background: "transparent", fontSize: "1.5rem", cursor: "pointer", lineHeight: "1"
    } }, "\u00d7");
    box.appendChild(close);
    box.appendChild(el("h2", { id: uid + "-title", style: { fontSize: "1.15rem", margin: "0 0 1rem" } }, survey.name));
    var form = el("form", { novalidate: "novalidate" });
    var blocks = {};
    survey.questions.forEach(function (q) {
      var fs = el("fieldset", { style: { border: "0", padding: "0", margin: "0 0 1rem" } });
      fs.appendChild(el("legend", { style: { fontWeight: "600", marginBottom: "0.4rem" } }, q.text + (q.required ? " *" : "")));
      var name = uid + "-" + q.key;
      if (q.type === "text") {
        fs.appendChild(el("textarea", { name: name, rows: "3", maxlength: "5000", "aria-label": q.text,
          style: { width: "100%", boxSizing: "border-box" } }));
      } else {
        var options = q.choices || [];
        if (q.scale) {
          options = [];
          for (var n = q.scale.min; n <= q.scale.max; n++) {
            options.push({ value: String(n), label: String(n), title: q.scale.labels ? q.scale.labels[String(n)] : "" });
          }
        }
        var row = el("div", { style: { display: "flex", flexWrap: "wrap", gap: "0.3rem" } });
        options.forEach(function (o) {
          var lab = el("label", { title: o.title || "", style: {
            display: "inline-flex", alignItems: "center", gap: "0.25rem", border: "1px solid #ccc",
            borderRadius: "6px", padding: "0.3rem 0.5rem", cursor: "pointer"
          } });
          lab.appendChild(el("input", { type: q.type === "multi" ? "checkbox" : "radio", name: name, value: o.value }));
          lab.appendChild(el("span", {}, o.label));
          row.appendChild(lab);
        });
        fs.appendChild(row);
        if (q.scale && (q.scale.low || q.scale.high)) {
          var anchors = el("div", { "aria-hidden": "true", style: { display: "flex", justifyContent: "space-between", fontSize: "0.8rem", color: "#555" } });
          anchors.appendChild(el("span", {}, q.scale.low || ""));
          anchors.appendChild(el("span", {}, q.scale.high || ""));
          fs.appendChild(anchors);
        }
      }
      var err = el("p", { role: "alert", style: { color: "#b00020", margin: "0.25rem 0 0", fontSize: "0.9rem" } });
      fs.appendChild(err);
      form.appendChild(fs);
      blocks[q.key] = { q: q, fs: fs, err: err, name: name };
    });
    var status = el("p", { role: "status", style: { margin: "0 0 0.5rem" } });
    form.appendChild(status);
    var submit = el("button", { type: "submit", style: {
      background: "#1565c0", color: "#fff", border: "0", borderRadius: "6px", padding: "0.6rem 1.2rem", cursor: "pointer"
    } }, t.submit);
    form.appendChild(submit);
    box.appendChild(form);
    overlay.appendChild(box);

    function values() {
      var out = {};
      survey.questions.forEach(function (q) {
        var b = blocks[q.key];
        var inputs = form.querySelectorAll('[name="' + b.name + '"]');
        var picked = [];
        for (var i = 0; i < inputs.length; i++) {
          var inp = inputs[i];
          if (inp.tagName === "TEXTAREA") { if (inp.value.trim()) picked.push(inp.value); }
          else if (inp.checked) picked.push(inp.value);
        }
        if (picked.length) out[q.key] = q.type === "multi" ? picked : picked[0];
      });
      return out;
    }
    function applySkips() {
      var given = values();
      survey.questions.forEach(function (q) {
        var show = shown(q, given);
        blocks[q.key].fs.style.display = show ? "" : "none";
        if (!show) delete given[q.key];
      });
      return given;
    }
    function dismiss() {
      var data = load(); data.dismissed = today(); save(data);
      if (overlay.parentNode) overlay.parentNode.removeChild(overlay);
      document.removeEventListener("keydown", onKey);
    }
    function onKey(e) { if (e.key === "Escape") dismiss(); }
    close.addEventListener("click", dismiss);
    document.addEventListener("keydown", onKey);
    form.addEventListener("change", applySkips);
    form.addEventListener("submit", function (e) {
      e.preventDefault();
      var answers = applySkips();
      Object.keys(blocks).forEach(function (k) { blocks[k].err.textContent = ""; });
      submit.disabled = true;
      fetch(base + "/responses", {
        method: "POST", mode: "cors", credentials: "omit",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ answers: answers, device: survey.device, lang: survey.lang })
      }).then(function (r) {
        return r.json().then(function (body) { return { status: r.status, body: body }; });
      }).then(function (res) {
        submit.disabled = false;
        if (res.status === 201 || res.status === 409) {
          var data = load(); data.answered = today(); save(data);
          form.textContent = "";
          form.appendChild(el("p", { role: "status" }, res.status === 201 ? t.thanks_title + " " + t.thanks_body : t.today_body));
          setTimeout(function () { if (overlay.parentNode) overlay.parentNode.removeChild(overlay); }, 3000);
          return;
        }
        var errors = (res.body && res.body.errors) || {};
        Object.keys(errors).forEach(function (k) { if (blocks[k]) blocks[k].err.textContent = errors[k].join(" "); });
        status.textContent = (errors.non_field_errors || []).join(" ") || (res.body && res.body.detail) || "";
      }).catch(function () { submit.disabled = false; });
    });
    document.body.appendChild(overlay);
    applySkips();
    var first = form.querySelector("input, textarea");
    if (first) first.focus();
  }

  function fetchAndShow() {
    var url = base + "/survey.json?lang=" + encodeURIComponent(lang) +
      (stored.device ? "&device=" + encodeURIComponent(stored.device) : "");
    fetch(url, { mode: "cors", credentials: "omit" }).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (survey) {
      if (!survey) return;
      var data = load(); data.device = survey.device;
      if (survey.answered_today) data.answered = today();
      save(data);
      if (!survey.answered_today && survey.questions.length) render(survey);
    }).catch(function () { /* the host page must never break */ });
  }

  function arm() {
    if (trigger.indexOf("after:") === 0) {
      var seconds = parseFloat(trigger.slice(6));
      setTimeout(fetchAndShow, (isFinite(seconds) ? seconds : 10) * 1000);
    } else if (trigger === "exit") {
      var onOut = function (e) {
        if (!e.relatedTarget && e.clientY <= 0) {
          document.removeEventListener("mouseout", onOut);
          fetchAndShow();
        }
      };
      document.addEventListener("mouseout", onOut);
    } else {
      fetchAndShow();
    }
  }
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", arm);
  else arm();
})();
