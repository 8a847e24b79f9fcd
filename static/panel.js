// The panel's small behaviours: pause reason only while pausing, the comments counter,
// searching a long list, the callback time, keyboard shortcuts, field error marks, and
// telling the host page about each outcome.
(function () {
  "use strict";
  const MESSAGE_TYPE = "cloudagent-disposition";
  const ERROR_FIELDS = ["disposition", "callback_time", "comments", "pause_reason"];

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
      callbackTime: outcome.dataset.callbackTime || null,
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
    for (const name of ERROR_FIELDS) {
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
    const callback = document.getElementById("callback-field");
    const when = document.getElementById("callback_time");
    p.dataset.callbackTime = callback && !callback.hidden && when ? when.value.replace("T", " ") : "";
    const title = document.createElement("strong");
    title.textContent = "Result unknown.";
    p.append(title, " " + text);
    status.replaceChildren(p);
    tellHost(p);
  }

  // -- searching a long list -------------------------------------------------------------

  function normal(text) {
    return text.toLowerCase().replace(/\s+/g, " ").trim();
  }

  function searchable(select, search, count) {
    // The list as rendered, in parts: each optgroup, or the select itself when it has none.
    // Filtering removes the options that stop matching and puts back, in their place, those
    // that match again; the others are not touched, so a keystroke costs little even on a
    // long list, and the chosen option keeps its place and its selection.
    const placeholder = select.querySelector('option[value=""]');
    const entries = (options) =>
      Array.from(options, (option) => ({ option, text: normal(option.textContent), on: true }));
    const parts = Array.from(select.querySelectorAll("optgroup"), (group) => ({
      group,
      entries: entries(group.querySelectorAll("option")),
    }));
    if (!parts.length) {
      const loose = Array.from(select.options).filter((o) => o !== placeholder);
      parts.push({ group: null, entries: entries(loose) });
    }
    const full = parts[parts.length - 1]; // the whole list: the last group, or the only part
    const total = full.entries.length;

    function place(part, index, entry, after) {
      const container = part.group || select;
      const first = part.group ? container.firstChild : placeholder.nextSibling;
      container.insertBefore(entry.option, after ? after.nextSibling : first);
      entry.on = true;
    }

    function filter() {
      const query = normal(search.value);
      // The chosen option stays, whatever is typed: the choice is never lost to a search.
      const chosen = select.value ? select.selectedOptions[0] : null;
      let shown = 0;
      parts.forEach((part, index) => {
        let after = null; // the last option kept so far in this part
        for (const entry of part.entries) {
          const matches = !query || entry.text.includes(query);
          if (matches && part === full) shown += 1;
          if (matches || entry.option === chosen) {
            if (!entry.on) place(part, index, entry, after);
            after = entry.option;
          } else if (entry.on) {
            entry.option.remove();
            entry.on = false;
          }
        }
        if (part.group && !after && part.group.isConnected) part.group.remove();
        if (part.group && after && !part.group.isConnected) {
          const later = parts.slice(index + 1).find((p) => p.group.isConnected);
          select.insertBefore(part.group, later ? later.group : null);
        }
      });
      (chosen || placeholder).selected = true;
      count.textContent = !query
        ? total + " dispositions"
        : shown
          ? shown + " of " + total + " match"
          : "No disposition matches “" + search.value.trim() + "”";
    }

    function firstMatch() {
      return Array.from(select.options).find((o) => o.value && !o.disabled) || null;
    }

    function pick(option) {
      if (!option || option.selected) return;
      option.selected = true;
      select.dispatchEvent(new Event("change", { bubbles: true }));
    }

    search.addEventListener("input", filter);
    search.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !(event.ctrlKey || event.metaKey)) {
        // Enter picks the first match; it never submits the form from the search box.
        event.preventDefault();
        if (search.value.trim()) pick(firstMatch());
        select.focus();
      } else if (event.key === "ArrowDown") {
        // Into the list, on the first match unless the chosen one matches already.
        event.preventDefault();
        const chosen = select.selectedOptions[0];
        const query = normal(search.value);
        if (query && !(chosen && chosen.value && chosen.dataset.match.includes(query))) {
          pick(firstMatch());
        }
        select.focus();
      } else if (event.key === "Escape" && search.value) {
        event.preventDefault();
        clear();
      }
    });

    function clear() {
      search.value = "";
      filter();
    }
    return { clear, filter };
  }

  // -- the callback time -----------------------------------------------------------------

  function localInput(date, zone) {
    // A date as a datetime-local value in CloudAgent's zone, whatever the browser's own zone.
    const parts = {};
    const format = new Intl.DateTimeFormat("en-CA", {
      timeZone: zone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    for (const part of format.formatToParts(date)) parts[part.type] = part.value;
    return `${parts.year}-${parts.month}-${parts.day}T${parts.hour}:${parts.minute}`;
  }

  function callbackTime(form, select) {
    const field = form.querySelector("#callback-field");
    const input = form.querySelector("#callback_time");
    if (!field || !input) return null;
    const names = new Set(JSON.parse(field.dataset.dispositions || "[]"));
    const zone = field.dataset.zone;

    function limits() {
      const now = Date.now();
      input.min = localInput(new Date(now + 60 * 1000), zone);
      input.max = localInput(new Date(now + 30 * 24 * 3600 * 1000), zone);
    }

    function sync() {
      const needed = names.has(select.value);
      field.hidden = !needed;
      input.required = needed; // kept when hidden: switching back restores what was typed
      if (needed) limits();
    }

    for (const button of field.querySelectorAll("[data-callback-in]")) {
      button.addEventListener("click", () => {
        const minutes = Number(button.dataset.callbackIn);
        limits();
        input.value = localInput(new Date(Date.now() + minutes * 60 * 1000), zone);
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
    }
    for (const button of field.querySelectorAll("[data-callback-tomorrow]")) {
      button.addEventListener("click", () => {
        limits();
        const tomorrow = localInput(new Date(Date.now() + 24 * 3600 * 1000), zone);
        input.value = tomorrow.slice(0, 11) + button.dataset.callbackTomorrow;
        input.dispatchEvent(new Event("input", { bubbles: true }));
      });
    }
    input.addEventListener("focus", limits);
    select.addEventListener("change", sync);
    sync();
    return { sync };
  }

  // -- wiring ----------------------------------------------------------------------------

  let current = null; // the wired form's behaviours, for the document-wide shortcuts

  function wire(form) {
    const pause = form.querySelector("#pause");
    const reasonField = form.querySelector("#pause-reason-field");
    const reason = form.querySelector("#pause_reason");
    const comments = form.querySelector("#comments");
    const count = form.querySelector("#comments-count");
    const save = form.querySelector("#save");
    const select = form.querySelector("#disposition");
    const search = form.querySelector("#disposition-search");
    const searchCount = form.querySelector("#disposition-search-count");

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
    const finder = select && search && searchCount ? searchable(select, search, searchCount) : null;
    if (select) callbackTime(form, select);
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && save && !save.disabled) {
        // Ctrl+Enter saves from anywhere in the form, with the browser's checks first.
        event.preventDefault();
        form.requestSubmit(save);
      } else if (event.key === "Escape" && finder && search.value && event.target !== select) {
        finder.clear();
      }
    });
    current = { form, select };
  }

  function pickRecent(number) {
    if (!current || !current.select || current.select.disabled) return false;
    const option = current.select.querySelector(`option[data-recent="${number}"]`);
    if (!option) return false;
    option.selected = true;
    current.select.dispatchEvent(new Event("change", { bubbles: true }));
    return true;
  }

  document.addEventListener("keydown", (event) => {
    // Alt+1 to Alt+5: the recent choices, from anywhere in the panel. By key position, so
    // layouts where Alt+digit types another character work too.
    const digit = /^Digit([1-5])$/.exec(event.code);
    if (digit && event.altKey && !event.ctrlKey && !event.metaKey && pickRecent(digit[1])) {
      event.preventDefault();
    }
  });

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
