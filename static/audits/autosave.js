/* Visit form autosave that tolerates a shopper's flaky phone connection.

   Every edit is written to localStorage at once (key: the job id; with it the draft revision the
   edit builds on), then posted to the draft endpoint. What the server confirms is dropped from the
   phone; what fails (offline, network error, 5xx) stays there and is retried with backoff and on
   the "online" event, and after a reload or a closed browser. The server refuses a save built on
   an older revision (409), so a replayed queue never overwrites answers saved since from elsewhere:
   the queue is then discarded and the page reloads the newer answers.
   Without this script the form still works: "Save draft" and "Submit" are plain posts. */
(function () {
  "use strict";
  var NOTE_KEY = "cem.audits.draft-note";
  var INPUT_DELAY = 1500; // typing: wait for a pause, like the old hx-trigger "input delay:1500ms"
  var MAX_DELAY = 60000;

  var form = document.querySelector("form[data-job]");
  if (!form) return;
  var key = "cem.audits.draft." + form.getAttribute("data-job");
  var url = form.getAttribute("data-autosave");

  function load() {
    try { return JSON.parse(window.localStorage.getItem(key)); } catch (e) { return null; }
  }
  function store(queue) {
    try { window.localStorage.setItem(key, JSON.stringify(queue)); } catch (e) { /* full or blocked */ }
  }
  function clear() {
    try { window.localStorage.removeItem(key); } catch (e) { /* blocked */ }
  }

  if (!url) { // not editable any more (submitted, published…): nothing left to send
    clear();
    return;
  }

  var offlineBox = document.getElementById("offline-status");
  var submitButton = form.querySelector("[data-testid=submit-report]");
  var submitNote = form.querySelector("[data-testid=submit-offline]");
  var sendTimer = null;
  var inFlight = false;
  var failures = 0;

  function statusBox() { return document.getElementById("save-status"); }
  function serverRevision() {
    var box = statusBox();
    return box ? box.getAttribute("data-revision") || "" : "";
  }
  function csrfToken() {
    var input = form.querySelector("input[name=csrfmiddlewaretoken]");
    return input ? input.value : "";
  }
  function snapshot() { // the form as the server would receive it, minus the token and files
    var out = [];
    new FormData(form).forEach(function (value, name) {
      if (typeof value === "string" && name !== "csrfmiddlewaretoken") out.push([name, value]);
    });
    return out;
  }

  function say(text) {
    if (!offlineBox) return;
    offlineBox.textContent = text;
    offlineBox.hidden = !text;
  }
  function changes(queue) {
    var n = queue.changed.length || 1;
    return n + (n === 1 ? " change" : " changes") + " saved on this phone";
  }
  function showQueued(queue, retryIn) {
    if (!navigator.onLine) say("Offline — " + changes(queue) + ", will retry when the connection returns.");
    else if (retryIn) say("Not saved yet (connection problem) — " + changes(queue) + ", retrying in " + Math.round(retryIn / 1000) + " s.");
    else say("Saving — " + changes(queue) + "…");
  }
  function showSubmitState() {
    var offline = !navigator.onLine;
    if (submitButton) submitButton.disabled = offline;
    if (submitNote) submitNote.hidden = !offline;
  }

  function edited(event) {
    var name = event.target && event.target.name;
    if (!name || name === "file") return;
    var queue = load() || { revision: serverRevision(), changed: [], seq: 0 };
    if (queue.changed.indexOf(name) === -1) queue.changed.push(name);
    queue.fields = snapshot();
    queue.seq += 1;
    store(queue);
    if (!navigator.onLine) { showQueued(queue); return; }
    schedule(event.type === "input" ? INPUT_DELAY : 0);
  }

  function schedule(delay) {
    window.clearTimeout(sendTimer);
    sendTimer = window.setTimeout(send, delay);
  }

  function failed(queue) {
    failures += 1;
    var delay = Math.min(MAX_DELAY, 2000 * Math.pow(2, failures - 1));
    showQueued(queue, navigator.onLine ? delay : 0);
    schedule(delay);
  }

  function swapStatus(html) {
    var template = document.createElement("template");
    template.innerHTML = html.trim();
    var fresh = template.content.firstElementChild;
    var box = statusBox();
    if (fresh && fresh.id === "save-status" && box) box.replaceWith(fresh);
  }

  function send() {
    var queue = load();
    if (!queue) return;
    if (inFlight) return; // the running request sends again when it sees a newer seq
    if (!navigator.onLine) { showQueued(queue); return; }
    inFlight = true;
    var body = new FormData();
    body.append("csrfmiddlewaretoken", csrfToken());
    queue.fields.forEach(function (pair) { body.append(pair[0], pair[1]); });
    body.append("revision", queue.revision);
    window.fetch(url, {
      method: "POST",
      body: body,
      credentials: "same-origin",
      headers: { "HX-Request": "true", "X-CSRFToken": csrfToken() },
    }).then(function (resp) {
      return resp.text().then(function (html) { return { resp: resp, html: html }; });
    }).then(function (result) {
      inFlight = false;
      var resp = result.resp;
      if (resp.status === 409) {
        clear();
        try {
          window.sessionStorage.setItem(NOTE_KEY, "The report was saved from elsewhere in the meantime: the answers kept on this phone were older and have been discarded.");
        } catch (e) { /* blocked */ }
        window.location.reload();
        return;
      }
      if (resp.status >= 500 || resp.status === 0) { failed(queue); return; }
      if (!resp.ok || resp.redirected) { // signed out, no longer the shopper's job…: retrying won't help
        say("Not saved (" + (resp.redirected ? "signed out" : "error " + resp.status) + ") — " + changes(queue) + "; reload the page.");
        return;
      }
      failures = 0;
      swapStatus(result.html);
      var now = load();
      if (now && now.seq !== queue.seq) { // edited while this save was on its way
        now.revision = serverRevision();
        store(now);
        showQueued(now);
        schedule(0);
      } else {
        clear();
        say("");
      }
    }).catch(function () {
      inFlight = false;
      failed(queue);
    });
  }

  function restore(queue) { // put the queued answers back into the form before resending them
    queue.fields.forEach(function (pair) {
      var inputs = form.querySelectorAll("[name=\"" + pair[0].replace(/"/g, "\\\"") + "\"]");
      for (var i = 0; i < inputs.length; i++) {
        var el = inputs[i];
        if (el.type === "radio" || el.type === "checkbox") el.checked = el.value === pair[1];
        else el.value = pair[1];
      }
    });
  }

  function whenSaved(then) { // after the queued edits are on the server (or 5 s, whatever comes first)
    var waited = 0;
    schedule(0);
    (function check() {
      if ((!load() && !inFlight) || waited >= 5000) { then(); return; }
      waited += 100;
      window.setTimeout(check, 100);
    })();
  }

  function start() {
    var note = null;
    try {
      note = window.sessionStorage.getItem(NOTE_KEY);
      window.sessionStorage.removeItem(NOTE_KEY);
    } catch (e) { /* blocked */ }
    if (note) say(note);
    var queue = load();
    if (queue && queue.fields) {
      if (queue.revision === serverRevision()) { // built on what the server holds: newer, send it
        restore(queue);
        showQueued(queue);
        send();
      } else { // the server moved on since (this queue was already saved, or saved over elsewhere)
        clear();
      }
    }
    form.addEventListener("input", edited);
    form.addEventListener("change", edited);
    form.addEventListener("submit", function (event) {
      var saveDraft = event.submitter && event.submitter.getAttribute("data-testid") === "save-draft";
      if (!navigator.onLine) { // a post would only show the browser's offline page
        event.preventDefault();
        if (saveDraft) {
          var q = load();
          if (q) showQueued(q);
          else say("Offline — nothing new to save.");
        }
        return;
      }
      clear(); // the post carries every answer in the form
    });
    // A photo's own form posts and leaves the page. The edit just made (its "change" fires as the
    // upload button takes the focus) would be saved while the page goes, and the next page would
    // resend it on a revision the server has moved past: a 409 and a "discarded" note for answers
    // that were in fact saved. So the upload waits for the save.
    document.addEventListener("submit", function (event) {
      var target = event.target;
      if (target === form || !/^photo-/.test(target.id || "") || !navigator.onLine) return;
      if (!load() && !inFlight) return;
      event.preventDefault();
      whenSaved(function () { target.submit(); });
    });
    window.addEventListener("online", function () {
      showSubmitState();
      failures = 0;
      schedule(0);
    });
    window.addEventListener("offline", function () {
      showSubmitState();
      var q = load();
      if (q) showQueued(q);
    });
    showSubmitState();
  }

  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", start);
  else start();
})();
