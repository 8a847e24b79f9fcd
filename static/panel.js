// The panel's small behaviours: pause reason only while pausing, the comments counter,
// Ctrl+Enter to save, field error marks, and telling the host page about each outcome.
(function () {
  "use strict";
  const MESSAGE_TYPE = "cloudagent-disposition";

  function parentOrigins() {
    // Exact origins only: postMessage never goes to "*", and a wildcard source cannot be a target.
    const list = (document.body.dataset.parentOrigins || "").split(/\s+/);
    return list
      .map((item) => (item === "'self'" ? window.location.origin : item))
      .filter((item) => /^https?:\/\/[^*\s]+$/.test(item));
  }

  function tellHost(outcome) {
    if (window.parent === window) return;
    const message = {
      type: MESSAGE_TYPE,
      version: 1,
      outcome: outcome.dataset.outcome,
      resultUnknown: outcome.dataset.resultUnknown === "true",
      ucid: outcome.dataset.ucid || null,
      disposition: outcome.dataset.disposition || null,
      message: outcome.textContent.trim(),
    };
    const allowed = parentOrigins();
    // Where the browser names the parent's origin (Chromium, Safari), address only that one
    // if it is allowed; elsewhere try each allowed origin: the browser drops the mismatches.
    const ancestors = window.location.ancestorOrigins;
    const targets =
      ancestors && ancestors.length ? allowed.filter((o) => o === ancestors[0]) : allowed;
    for (const origin of targets) window.parent.postMessage(message, origin);
  }

  function markErrors(form) {
    for (const name of ["disposition", "comments", "pause_reason"]) {
      const field = form.querySelector("#" + name);
      const error = document.getElementById(name + "-error");
      if (!field || !error) continue;
      if (error.textContent.trim()) field.setAttribute("aria-invalid", "true");
      else field.removeAttribute("aria-invalid");
    }
  }

  function showLocalOutcome(kind, text) {
    // Used only when our own server cannot be reached: nothing came back to swap in.
    const status = document.getElementById("status");
    const form = document.getElementById("panel-form");
    const p = document.createElement("p");
    p.className = "outcome outcome--" + kind;
    p.dataset.outcome = kind;
    p.dataset.resultUnknown = "true";
    p.dataset.ucid = form ? form.dataset.ucid : "";
    const select = document.getElementById("disposition");
    p.dataset.disposition = select ? select.value : "";
    const title = document.createElement("strong");
    title.textContent = "Result unknown.";
    p.append(title, " " + text);
    status.replaceChildren(p);
    tellHost(p);
  }

  function wire(form) {
    const pause = form.querySelector("#pause");
    const reasonField = form.querySelector("#pause-reason-field");
    const reason = form.querySelector("#pause_reason");
    const comments = form.querySelector("#comments");
    const count = form.querySelector("#comments-count");
    const save = form.querySelector("#save");

    function syncPause() {
      reasonField.hidden = !pause.checked;
      reason.required = pause.checked;
    }
    if (pause && reason) {
      pause.addEventListener("change", syncPause);
      syncPause();
    }
    if (comments && count) {
      const max = comments.maxLength;
      const update = () => (count.textContent = comments.value.length + " / " + max);
      comments.addEventListener("input", update);
      update();
    }
    if (comments && save) {
      comments.addEventListener("keydown", (event) => {
        if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
          event.preventDefault();
          form.requestSubmit(save);
        }
      });
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const form = document.getElementById("panel-form");
    if (form) wire(form);
    // htmx (loaded first) has processed the page by now: the form is ready to save.
    performance.mark("panel-ready");
  });

  document.addEventListener("htmx:after:swap", (event) => {
    const target = event.detail && event.detail.ctx && event.detail.ctx.target;
    const form = document.getElementById("panel-form");
    if (target && target.id === "panel-form") {
      wire(form); // the form was reloaded (Try again)
      return;
    }
    if (!target || target.id !== "status") return;
    if (form) markErrors(form);
    const outcome = document.querySelector("#status [data-outcome]");
    if (outcome) tellHost(outcome);
  });

  document.addEventListener("htmx:error", (event) => {
    const ctx = event.detail && event.detail.ctx;
    if (!ctx || !ctx.target || ctx.target.id !== "status") return;
    showLocalOutcome(
      "unavailable",
      "The disposition service did not answer, so the result is unknown. " +
        "Save again: if it was already recorded, you will be told."
    );
  });
})();
