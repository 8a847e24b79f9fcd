// The panel's small behaviours: pause reason only while pausing, the comments counter,
// searching a long list, the callback time, keyboard shortcuts, field error marks, and the
// messages to and from the host page (docs/embedding.md): ready, resize and each outcome
// out; the end of the call (a wrap-up countdown) and a prefill in; and what CloudAgent said
// about the call (its end, the disposition it kept), shown and passed on to the host.
(function () {
  "use strict";
  const MESSAGE_TYPE = "cloudagent-disposition";
  const HOST_TYPE = "cloudagent-disposition-host";
  const ERROR_FIELDS = ["disposition", "callback_time", "comments", "pause_reason"];
  // The texts this script writes itself are here in English, marked like the server's for the
  // catalogues (make translations); in another language the page carries their translations
  // (data-texts, from webapp/panel/texts.py), English ones cost nothing.
  const TEXTS = JSON.parse(document.body.dataset.texts || "{}");

  function _(message, values = {}) {
    return fill(TEXTS[message] || message, values);
  }

  // A count's text: its form for 1, or for any other number (gettext's two forms).
  function ngettext(singular, plural, num, values = {}) {
    const forms = TEXTS[singular] || [singular, plural];
    return fill(forms[num === 1 ? 0 : 1], { num, ...values });
  }

  function N_(message) {
    return message; // marked for the catalogues; translated where it is shown
  }

  function fill(template, values) {
    return template.replace(/%\((\w+)\)s/g, (match, name) => String(values[name]));
  }

  function parentOrigins() {
    // Exact origins only: postMessage never goes to "*", and a wildcard source cannot be a target.
    const list = (document.body.dataset.parentOrigins || "").split(/\s+/);
    return list
      .map((item) => (item === "'self'" ? window.location.origin : item))
      .filter((item) => /^https?:\/\/[^*\s]+$/.test(item));
  }

  function post(message) {
    if (window.parent === window) return;
    const allowed = parentOrigins();
    // Where the browser names the parent's origin (Chromium, Safari), address only that one
    // if it is allowed; elsewhere try each allowed origin: the browser drops the mismatches.
    const ancestors = window.location.ancestorOrigins;
    const targets =
      ancestors && ancestors.length ? allowed.filter((o) => o === ancestors[0]) : allowed;
    for (const origin of targets) window.parent.postMessage(message, origin);
  }

  function refused(reason) {
    // The panel cannot be used (a refused link, an expired panel, an error page): the host
    // hears why, in a code that echoes nothing of the link (docs/embedding.md).
    post({ type: MESSAGE_TYPE, version: 1, event: "refused", reason });
  }

  function tellHost(outcome) {
    const data = outcome.dataset;
    const message = {
      type: MESSAGE_TYPE,
      version: 1,
      event: "outcome",
      outcome: data.outcome,
      resultUnknown: data.resultUnknown === "true",
      ucid: data.ucid || null,
      disposition: data.disposition || null, // the choice the agent just tried
      recordedDisposition: data.recordedDisposition || null, // what CloudAgent holds, if known
      reason: data.reason || null,
      callbackTime: data.callbackTime || null,
      message: outcome.textContent.trim(),
    };
    post(message);
    if (data.refused) refused(data.refused);
    wrapup.settled(message.outcome);
    if (data.finished === "true") finish(outcome);
  }

  function finish(outcome) {
    finishPanel(outcome.dataset.recordedDisposition, outcome);
  }

  function finishPanel(recorded, shown) {
    // CloudAgent takes nothing more for this call: the form gives way to what it holds (the
    // outcome's summary, or CloudAgent's own word), and Save can no longer be pressed (the
    // fieldset disables it: htmx re-enables the button itself when its request ends).
    const form = document.getElementById("panel-form");
    if (!form) return;
    const set = form.querySelector("#panel-set");
    const fields = form.querySelector("#form-fields");
    const select = form.querySelector("#disposition");
    if (select && recorded) {
      if (current && current.finder) current.finder.clear(); // every option back in the list
      const option = Array.from(select.options).find((o) => o.value === recorded);
      if (option) option.selected = true;
    }
    const within = set && set.contains(document.activeElement);
    form.dataset.finished = "true";
    if (fields) fields.hidden = true;
    const hint = form.querySelector("#shortcuts");
    if (hint) hint.hidden = true;
    if (set) set.disabled = true;
    if (within) {
      // Focus was on what just went away: put it on what says what happened (never taken
      // from elsewhere: a panel that opens finished leaves the CRM page's focus alone).
      shown.tabIndex = -1;
      shown.focus({ preventScroll: true });
    }
  }


  function markErrors(form) {
    for (const name of ERROR_FIELDS) {
      const error = document.getElementById(name + "-error");
      if (!error) continue;
      // The controls the error describes: the field, or both parts of the callback time.
      for (const field of form.querySelectorAll(`[aria-describedby~="${name}-error"]`)) {
        if (error.textContent.trim()) field.setAttribute("aria-invalid", "true");
        else field.removeAttribute("aria-invalid");
      }
    }
  }

  function showLocalOutcome(kind, message) {
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
    const unknown = _("Result unknown");
    title.textContent = _("%(title)s.", { title: unknown });
    p.append(title, " " + message);
    status.replaceChildren(p);
    tellHost(p);
    if (shownConfirmed) showConfirmed(shownConfirmed); // what CloudAgent recorded stays
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
    const whole = count.textContent; // "60 dispositions", as the server wrote it

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
        ? whole
        : shown
          ? ngettext("%(num)s of %(total)s matches", "%(num)s of %(total)s match", shown, { total })
          : _("No disposition matches “%(query)s”", { query: search.value.trim() });
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
        if (query && !(chosen && chosen.value && normal(chosen.textContent).includes(query))) {
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
    // A date as callback_time takes it (YYYY-MM-DDTHH:MM) in CloudAgent's zone, whatever the
    // browser's own zone.
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

  // A time as the time box takes it: HH:MM, or H:MM, HHMM, HMM, or with a dot (its pattern).
  const CLOCK = /^\s*([01]?[0-9]|2[0-3])[:.]?([0-5][0-9])\s*$/;

  function callbackTime(form, select) {
    // The time as the outcome writes it, whatever the browser's locale: a day list (the
    // server's, in the panel's language) and a 24-hour time box. callback_time, which is
    // posted, follows them (YYYY-MM-DDTHH:MM in CloudAgent's zone), and so does the moment
    // written out beside them: "Callback at 3 Dec, 00:12 IST."
    const field = form.querySelector("#callback-field");
    const posted = form.querySelector("#callback_time");
    const day = form.querySelector("#callback_day");
    const clock = form.querySelector("#callback_clock");
    const when = form.querySelector("#callback_time-when");
    if (!field || !posted || !day || !clock || !when) return null;
    const names = new Set(JSON.parse(field.dataset.dispositions || "[]"));
    const zone = field.dataset.zone;
    let needed = false;

    function time() {
      const parts = CLOCK.exec(clock.value);
      return parts ? parts[1].padStart(2, "0") + ":" + parts[2] : null;
    }

    function update() {
      const hhmm = time();
      const typed = clock.value.trim(); // not a time: posted as typed, the server says so
      posted.value = hhmm || typed ? day.value + "T" + (hhmm || typed) : "";
      const option = day.selectedOptions[0];
      const moment =
        hhmm && option
          ? _("Callback at %(when)s.", { when: option.dataset.when.replace("{time}", hhmm) })
          : "";
      if (when.textContent !== moment) when.textContent = moment; // said once, when it changes
      check();
    }

    function check() {
      // Passed, or too far ahead: a text box has no min and max of its own. Checked again
      // just before the browser's checks (any click, key or edit in the form), as time goes by.
      let flaw = "";
      if (needed && time()) {
        const now = Date.now();
        if (posted.value < localInput(new Date(now + 60 * 1000), zone)) flaw = "rangeUnderflow";
        else if (posted.value > localInput(new Date(now + 30 * 24 * 3600 * 1000), zone)) {
          flaw = "rangeOverflow";
        }
      }
      clock.setCustomValidity(flaw ? _(FLAWS.callback_clock[flaw]) : "");
    }

    function sync() {
      needed = names.has(select.value);
      field.hidden = !needed;
      clock.required = needed; // kept when hidden: switching back restores what was typed
      check();
    }

    function set(moment) {
      // A suggested time, "YYYY-MM-DDTHH:MM", in both controls, as if the agent chose it.
      if (!Array.from(day.options).some((o) => o.value === moment.slice(0, 10))) return;
      day.value = moment.slice(0, 10);
      clock.value = moment.slice(11, 16);
      clock.dispatchEvent(new Event("input", { bubbles: true }));
    }

    for (const button of field.querySelectorAll("[data-callback-in]")) {
      button.addEventListener("click", () => {
        const minutes = Number(button.dataset.callbackIn);
        set(localInput(new Date(Date.now() + minutes * 60 * 1000), zone));
      });
    }
    for (const button of field.querySelectorAll("[data-callback-tomorrow]")) {
      button.addEventListener("click", () => {
        const tomorrow = localInput(new Date(Date.now() + 24 * 3600 * 1000), zone);
        set(tomorrow.slice(0, 11) + button.dataset.callbackTomorrow);
      });
    }
    day.addEventListener("change", update);
    clock.addEventListener("input", update);
    clock.addEventListener("change", () => {
      const hhmm = time();
      if (hhmm && clock.value !== hhmm) clock.value = hhmm; // 930 reads 09:30 once typed
      update();
    });
    // After the form's own reset of every message (capture), before the browser's checks.
    for (const type of ["click", "keydown", "input", "change"]) form.addEventListener(type, check);
    select.addEventListener("change", sync);
    sync();
    update(); // what the browser or Try again put back
    return { sync };
  }

  // -- the wrap-up countdown (the host page says the call ended) ---------------------------

  const wrapup = (function () {
    let deadline = null;
    let timer = null;
    let warned = false;

    function parts() {
      return {
        box: document.getElementById("wrapup"),
        time: document.getElementById("wrapup-time"),
        note: document.getElementById("wrapup-note"),
      };
    }

    function show(seconds) {
      const m = Math.floor(seconds / 60);
      const s = seconds % 60;
      return m + ":" + String(s).padStart(2, "0");
    }

    function tick() {
      const { box, time, note } = parts();
      const left = Math.max(0, Math.ceil((deadline - performance.now()) / 1000));
      time.textContent = show(left);
      // Polite, and twice only: the last ten seconds, then the end. Not every second.
      if (left > 0 && left <= 10 && !warned) {
        warned = true;
        note.textContent = ngettext(
          "%(num)s second of wrap-up left.",
          "%(num)s seconds of wrap-up left.",
          left,
        );
      }
      if (left === 0) {
        clearInterval(timer);
        timer = null;
        box.classList.add("wrapup--over");
        note.textContent = _(
          "Wrap-up is over. CloudAgent may have closed the call; if so, a save now will " +
            "say the call already has a disposition.",
        );
      }
    }

    return {
      start(seconds) {
        const { box, note } = parts();
        if (!box) return;
        // One clock, whoever says the call ended (CloudAgent, the host page, both): the
        // earlier deadline stands.
        const next = performance.now() + seconds * 1000;
        if (deadline !== null && next >= deadline) return;
        clearInterval(timer);
        deadline = next;
        warned = false;
        note.textContent = "";
        box.classList.remove("wrapup--over");
        box.hidden = false;
        tick();
        if (seconds > 0) timer = setInterval(tick, 250);
      },
      settled(outcome) {
        // The disposition is recorded: the clock no longer matters.
        if (!["queued", "saved", "already_disposed"].includes(outcome)) return;
        const { box } = parts();
        clearInterval(timer);
        timer = null;
        deadline = null;
        if (box) box.hidden = true;
      },
    };
  })();

  // -- what CloudAgent said about the call (webapp/panel/callstate.py) ---------------------

  const told = { ended: false, confirmed: null }; // what the host has heard, once each
  let shownConfirmed = null; // CloudAgent's summary as shown: kept when an outcome replaces it

  function applyCallState(state) {
    // From the page when the panel opens (data-call-state), and from a push message later:
    // {ucid, ended, wrapupLeft, confirmed: {disposition, matches, auto} | null}.
    if (!state || typeof state !== "object" || !state.ended) return;
    const ucid = state.ucid || null;
    const line = document.getElementById("call-ended");
    if (line) line.hidden = false;
    if (!state.confirmed && Number.isInteger(state.wrapupLeft) && state.wrapupLeft >= 0) {
      wrapup.start(state.wrapupLeft);
    }
    if (!told.ended) {
      told.ended = true;
      post({ type: MESSAGE_TYPE, version: 1, event: "call-ended", ucid, source: "cloudagent" });
    }
    const confirmed = state.confirmed;
    if (confirmed && typeof confirmed.disposition === "string" && told.confirmed !== confirmed.disposition) {
      told.confirmed = confirmed.disposition;
      showConfirmed(confirmed);
      post({
        type: MESSAGE_TYPE,
        version: 1,
        event: "confirmed",
        ucid,
        disposition: confirmed.disposition,
        matches: confirmed.matches === true,
      });
    }
  }

  function confirmedText(confirmed) {
    const values = { disposition: confirmed.disposition };
    if (confirmed.auto && confirmed.matches === false) {
      return _("CloudAgent recorded its automatic disposition “%(disposition)s” when wrap-up " +
        "time ran out, not what you saved.", values);
    }
    if (confirmed.auto) {
      return _("CloudAgent recorded its automatic disposition “%(disposition)s”: wrap-up time " +
        "ran out.", values);
    }
    if (confirmed.matches === true) return _("CloudAgent recorded “%(disposition)s”, as you saved it.", values);
    if (confirmed.matches === false) return _("CloudAgent recorded “%(disposition)s”, not what you saved.", values);
    return _("CloudAgent recorded “%(disposition)s”.", values);
  }

  function showConfirmed(confirmed) {
    // In the status region, beside any outcome: the disposition is final, the clock stops.
    shownConfirmed = confirmed;
    wrapup.settled("saved");
    const status = document.getElementById("status");
    if (!status) return;
    const p = document.createElement("p");
    p.className = "confirmed" + (confirmed.matches === true ? "" : " confirmed--other");
    p.dataset.confirmed = confirmed.disposition;
    p.textContent = confirmedText(confirmed);
    const old = status.querySelector("[data-confirmed]");
    if (old) old.replaceWith(p);
    else status.append(p);
    finishPanel(confirmed.disposition, p); // CloudAgent has closed the call: nothing to save
  }

  function pageCallState() {
    const main = document.querySelector("[data-call-state]");
    if (!main) return null;
    try {
      return JSON.parse(main.dataset.callState);
    } catch (error) {
      return null;
    }
  }

  // -- the call live (webapp/push): server-sent events, with back-off and resync ----------

  function listen(state) {
    // A plain EventSource (docs/architecture.md says why not htmx's hx-sse). Each message is
    // a whole state for applyCallState, which tells the host each thing once. On any error
    // the stream is closed and reopened after 0.5 s, 1 s, 2 s ... up to 30 s (±30 %), with the
    // newest id it saw: the server then sends the state only if it holds something newer;
    // never again once the server refused it for good (an expired context).
    const main = document.querySelector("main[data-events]");
    if (!main || typeof EventSource !== "function") return;
    let last = state && Number.isInteger(state.id) ? state.id : 0;
    let failures = 0;
    const connect = () => {
      const url = main.dataset.events + "&last=" + last;
      const source = new EventSource(url);
      source.onopen = () => { failures = 0; };
      const take = (event) => {
        let message = null;
        try { message = JSON.parse(event.data); } catch (error) { return; }
        if (Number.isInteger(message.id) && message.id > last) last = message.id;
        applyCallState(message);
        if (message.confirmed) source.close(); // CloudAgent's summary is final
      };
      for (const name of ["call-ended", "confirmed", "resync"]) source.addEventListener(name, take);
      source.onerror = () => {
        // CLOSED: the server answered with no stream (a dropped stream is CONNECTING). The
        // EventSource does not say why: one fetch asks. 400, 403 (the context expired) and
        // 404 are final: stop, saying nothing (the stream is an extra; a save says why). Any
        // other answer, or none, is tried again with back-off.
        const refused = source.readyState === EventSource.CLOSED;
        source.close();
        if (!refused) {
          again();
          return;
        }
        const probe = new AbortController();
        fetch(url, { signal: probe.signal, cache: "no-store" })
          .then((response) => {
            probe.abort(); // a 200 is a stream: not wanted here
            if (![400, 403, 404].includes(response.status)) again();
          })
          .catch(again);
      };
    };
    const again = () => {
      const delay = Math.min(30000, 500 * 2 ** failures) * (0.7 + 0.6 * Math.random());
      failures += 1;
      setTimeout(connect, delay);
    };
    if (!(state && state.confirmed)) connect();
  }

  // -- a prefill from the host page ------------------------------------------------------

  const touched = new Set(); // ids of the fields the agent has changed: a prefill leaves them
  let filling = false; // the changes a prefill makes are not the agent's

  function setField(field, value) {
    if (!field || touched.has(field.id)) return;
    if (field.type === "checkbox") field.checked = value;
    else field.value = value;
    // As if typed: the counter, the pause reason and the callback field follow.
    filling = true;
    try {
      field.dispatchEvent(new Event("input", { bubbles: true }));
      field.dispatchEvent(new Event("change", { bubbles: true }));
    } finally {
      filling = false;
    }
  }

  function optionValue(select, value) {
    // Only a value the list offers; anything else is ignored.
    if (!select || typeof value !== "string" || !value) return null;
    return Array.from(select.options).some((o) => o.value === value) ? value : null;
  }

  function prefill(form, data) {
    const select = form.querySelector("#disposition");
    if (select && !select.disabled) {
      const disposition = optionValue(select, data.disposition);
      if (disposition !== null) setField(select, disposition);
    }
    const comments = form.querySelector("#comments");
    if (comments && typeof data.comments === "string") {
      setField(comments, data.comments.slice(0, comments.maxLength));
    }
    const pause = form.querySelector("#pause");
    if (pause && typeof data.pause === "boolean") setField(pause, data.pause);
    const reason = optionValue(form.querySelector("#pause_reason"), data.pauseReason);
    if (reason !== null) setField(form.querySelector("#pause_reason"), reason);
    const day = form.querySelector("#callback_day");
    const clock = form.querySelector("#callback_clock");
    const time =
      typeof data.callbackTime === "string" &&
      /^([0-9]{4}-[0-9]{2}-[0-9]{2})[T ]([0-9]{2}:[0-9]{2})$/.exec(data.callbackTime.trim());
    // One time in two controls: left alone once the agent has changed either, and only on a
    // day the list offers.
    if (day && clock && time && CLOCK.test(time[2]) && optionValue(day, time[1]) !== null) {
      if (!touched.has(day.id) && !touched.has(clock.id)) {
        setField(day, time[1]);
        setField(clock, time[2]);
      }
    }
  }

  // -- messages from the host page -------------------------------------------------------

  const waiting = []; // messages that came before the form was wired

  function ignore(event, why) {
    // Not an error: anything may post to a window. Said at debug level, for developers.
    console.debug("cloudagent-disposition: ignored a message from " + event.origin + ": " + why);
  }

  function fromHost(event) {
    if (event.source !== window.parent || window.parent === window) {
      return ignore(event, "not from the page that frames the panel");
    }
    if (!parentOrigins().includes(event.origin)) {
      return ignore(event, "its origin is not in WIDGET_FRAME_ANCESTORS");
    }
    const data = event.data;
    if (!data || typeof data !== "object" || data.type !== HOST_TYPE || data.version !== 1) {
      return ignore(event, "not a " + HOST_TYPE + " message of version 1");
    }
    if (!current) {
      waiting.push(event);
      return;
    }
    if (current.form.dataset.finished) {
      return ignore(event, "the disposition is recorded: nothing more to do for this call");
    }
    if (data.event === "call-ended") {
      const seconds = data.wrapupSeconds;
      if (!Number.isInteger(seconds) || seconds < 0 || seconds > 3600) {
        return ignore(event, "wrapupSeconds must be a whole number from 0 to 3600");
      }
      wrapup.start(seconds);
    } else if (data.event === "prefill") {
      prefill(current.form, data);
    } else {
      ignore(event, "unknown event " + JSON.stringify(data.event));
    }
  }

  window.addEventListener("message", fromHost);

  // -- the panel's height, for a host that sizes the frame to fit --------------------------

  let height = 0;
  let sizing = false;

  function sendHeight() {
    sizing = false;
    const now = Math.ceil(document.body.getBoundingClientRect().height);
    if (now === height) return;
    height = now;
    post({ type: MESSAGE_TYPE, version: 1, event: "resize", height: now });
  }

  function watchHeight() {
    if (typeof ResizeObserver === "undefined") return;
    new ResizeObserver(() => {
      if (sizing) return;
      sizing = true;
      requestAnimationFrame(sendHeight); // once a frame at most
    }).observe(document.body);
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
    for (const field of form.querySelectorAll("select, textarea, input")) {
      // The agent's own changes, which a prefill must never overwrite.
      const mark = () => filling || touched.add(field.id);
      field.addEventListener("input", mark);
      field.addEventListener("change", mark);
    }
    if (select) callbackTime(form, select);
    // The browser's own checks stay, in the panel's language: its bubble would say "Please
    // select an item in the list" in the browser's. Each try starts clean (a click on Save,
    // Enter, Ctrl+Enter, an edit), so a message lasts only as long as the fault it names.
    form.addEventListener("invalid", (event) => explain(event.target), true);
    const fresh = (event) => {
      if (event.type === "click" && !event.target.closest("[type=submit]")) return;
      if (event.type === "keydown" && event.key !== "Enter") return;
      for (const field of form.elements) field.setCustomValidity("");
    };
    for (const type of ["click", "keydown", "input", "change"]) {
      form.addEventListener(type, fresh, true);
    }
    form.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey) && save && !save.matches(":disabled")) {
        // Ctrl+Enter saves from anywhere in the form, with the browser's checks first.
        event.preventDefault();
        form.requestSubmit(save);
      } else if (event.key === "Escape" && finder && search.value && event.target !== select) {
        finder.clear();
      }
    });
    current = { form, select, finder };
    if (save && save.hasAttribute("data-enable-when-ready")) {
      // Usable from now on: the host hears of it first, then the agent can act.
      post({ type: MESSAGE_TYPE, version: 1, event: "ready", ucid: form.dataset.ucid || null });
      performance.mark("ready-posted");
      save.disabled = false;
    }
    for (const event of waiting.splice(0)) fromHost(event);
  }

  // The browser's own checks, in the server's words for the same faults.
  const FLAWS = {
    disposition: { valueMissing: N_("Choose a disposition.") },
    pause_reason: { valueMissing: N_("Choose a pause reason, or untick Pause after this call.") },
    callback_clock: {
      // Its day is always one of the list's; the range is the script's own check.
      valueMissing: N_("Choose a callback time for this disposition."),
      rangeUnderflow: N_("That callback time has passed. Choose a time in the future."),
      rangeOverflow: N_("A callback can be at most 30 days ahead."),
      patternMismatch: N_("Enter the callback time as a date and a time."),
    },
  };

  function explain(field) {
    for (const [flaw, message] of Object.entries(FLAWS[field.id] || {})) {
      if (field.validity[flaw]) return field.setCustomValidity(_(message));
    }
  }

  function pickRecent(number) {
    if (!current || !current.select || current.select.matches(":disabled")) return false;
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
    // htmx (loaded first) has processed the page by now: the form is ready to save.
    const form = document.getElementById("panel-form");
    if (form) {
      wire(form);
      const state = pageCallState();
      applyCallState(state); // after "ready": the host hears the panel first
      listen(state);
    } else if (document.body.dataset.refused) refused(document.body.dataset.refused);
    watchHeight();
    performance.mark("panel-ready");
  });

  // Try again swaps in a new form: what the agent had typed in the old one goes with it.
  let typed = null;

  document.addEventListener("htmx:before:swap", (event) => {
    const target = event.detail && event.detail.ctx && event.detail.ctx.target;
    if (!target || target.id !== "panel-form") return;
    typed = Array.from(target.querySelectorAll("select, textarea, input:not([type=hidden])"))
      .filter((field) => field.id && field.id !== "disposition-search")
      .map((field) => [field.id, field.type === "checkbox" ? field.checked : field.value]);
  });

  function restore(form) {
    for (const [id, value] of typed || []) {
      const field = form.querySelector("#" + CSS.escape(id));
      if (!field || field.disabled) continue;
      if (field.tagName === "SELECT" && !Array.from(field.options).some((o) => o.value === value)) {
        continue; // not on the list any more
      }
      if (field.type === "checkbox") field.checked = value;
      else field.value = value;
      field.dispatchEvent(new Event("input", { bubbles: true }));
      field.dispatchEvent(new Event("change", { bubbles: true }));
    }
    typed = null;
  }

  document.addEventListener("htmx:after:swap", (event) => {
    const target = event.detail && event.detail.ctx && event.detail.ctx.target;
    const form = document.getElementById("panel-form");
    if (target && target.id === "panel-form") {
      restore(form); // the form was reloaded (Try again), with what the agent typed
      wire(form);
      return;
    }
    if (!target || target.id !== "status") return;
    if (form) markErrors(form);
    const outcome = document.querySelector("#status [data-outcome]");
    if (outcome) tellHost(outcome);
    // A save's answer that arrives after CloudAgent's summary replaced the status region:
    // what CloudAgent recorded stays in view, below the outcome, and is what the panel shows
    // as kept (after the outcome's own finishing).
    if (shownConfirmed && !target.querySelector("[data-confirmed]")) showConfirmed(shownConfirmed);
    // In a short frame the agent may have saved from the top (Ctrl+Enter): show the outcome.
    if (outcome) target.scrollIntoView({ block: "nearest" });
  });

  document.addEventListener("htmx:error", (event) => {
    const ctx = event.detail && event.detail.ctx;
    if (!ctx || !ctx.target || ctx.target.id !== "status") return;
    showLocalOutcome("unavailable", _(
        "The disposition service did not answer, so the result is unknown. " +
          "Save again: if it was already recorded, you will be told.",
      ));
  });
})();
