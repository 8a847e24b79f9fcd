/*! CloudAgent disposition widget: the host page's helper, release 1.2.0. No dependencies.
 * docs/embedding.md: CloudAgentDisposition.mount(element, {src, onReady, onOutcome, onError,
 * onCallEnded, onConfirmed})
 * frames the panel from a signed launch URL, sizes the frame to the panel, forwards its
 * events, tells the page when the panel cannot be used, and offers callEnded(seconds) and
 * prefill({...}). This file never changes once released: a new release gets a new URL. */
(function (global) {
  "use strict";
  var VERSION = "1.2.0";
  var FROM_PANEL = "cloudagent-disposition";
  var TO_PANEL = "cloudagent-disposition-host";
  var PREFILL = ["disposition", "comments", "pause", "pauseReason", "callbackTime"];
  var READY_TIMEOUT = 15000; // ms without "ready": the frame was blocked, or never loaded

  function fail(message) {
    throw new TypeError("CloudAgentDisposition: " + message);
  }

  function mount(target, options) {
    var element = typeof target === "string" ? document.querySelector(target) : target;
    if (!element || !element.appendChild) fail("mount() needs an element or a selector");
    options = options || {};
    var minHeight = options.minHeight || 160;
    var maxHeight = options.maxHeight || Infinity;
    var readyTimeout = options.readyTimeout === undefined ? READY_TIMEOUT : options.readyTimeout;
    if (!(typeof readyTimeout === "number" && readyTimeout >= 0)) {
      fail("readyTimeout is in milliseconds, 0 to wait for ever");
    }
    var frame = document.createElement("iframe");
    frame.title = options.title || "Call disposition";
    frame.style.display = "block";
    frame.style.width = "100%";
    frame.style.border = "0";
    frame.style.height = (options.height || 480) + "px";
    var origin = null;
    var ready = false;
    var waiting = []; // what the page asked before the panel could take it
    var timer = null;

    function call(handler, data) {
      if (typeof handler === "function") handler(data);
    }

    function send(message) {
      if (ready) frame.contentWindow.postMessage(message, origin);
      else waiting.push(message);
    }

    function stopWaiting() {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    }

    function open(src) {
      // Another call: the same frame, a new signed launch URL.
      var url = new URL(String(src || ""), document.baseURI);
      if (!src || !/^https?:$/.test(url.protocol)) fail("src must be the signed launch URL");
      origin = url.origin;
      ready = false;
      waiting = [];
      stopWaiting();
      if (readyTimeout > 0) {
        // A frame the browser refused (frame-ancestors) says nothing at all: only time tells.
        timer = setTimeout(function () {
          timer = null;
          call(options.onError, { reason: "timeout" });
        }, readyTimeout);
      }
      frame.src = url.href;
    }

    function listen(event) {
      // Only the panel in this frame, from the widget's own origin, in its own words.
      if (event.source !== frame.contentWindow || event.origin !== origin) return;
      var data = event.data;
      if (!data || data.type !== FROM_PANEL || data.version !== 1) return;
      if (data.event === "ready") {
        stopWaiting();
        ready = true;
        var queued = waiting.splice(0);
        for (var i = 0; i < queued.length; i++) send(queued[i]);
        call(options.onReady, data);
      } else if (data.event === "resize") {
        var height = Math.ceil(Number(data.height));
        if (height > 0) frame.style.height = Math.min(maxHeight, Math.max(minHeight, height)) + "px";
        call(options.onResize, data);
      } else if (data.event === "outcome") {
        call(options.onOutcome, data);
      } else if (data.event === "refused") {
        stopWaiting();
        call(options.onError, { reason: String(data.reason) });
      } else if (data.event === "call-ended") {
        call(options.onCallEnded, data); // CloudAgent said the call ended (source "cloudagent")
      } else if (data.event === "confirmed") {
        call(options.onConfirmed, data); // the disposition CloudAgent kept, and whether it matches
      }
    }

    window.addEventListener("message", listen);
    open(options.src);
    element.appendChild(frame);

    return {
      frame: frame,
      open: open,
      callEnded: function (wrapupSeconds) {
        // Whole seconds as a number: "45" is a mistake to hear of now, not a clock later.
        var seconds = wrapupSeconds;
        if (!(typeof seconds === "number" && seconds >= 0 && seconds <= 3600 &&
              Math.floor(seconds) === seconds)) {
          fail("callEnded() takes the wrap-up time as a number of whole seconds, 0 to 3600");
        }
        send({ type: TO_PANEL, version: 1, event: "call-ended", wrapupSeconds: seconds });
      },
      prefill: function (fields) {
        var message = { type: TO_PANEL, version: 1, event: "prefill" };
        for (var i = 0; i < PREFILL.length; i++) {
          if (fields && fields[PREFILL[i]] !== undefined) message[PREFILL[i]] = fields[PREFILL[i]];
        }
        send(message);
      },
      destroy: function () {
        stopWaiting();
        window.removeEventListener("message", listen);
        frame.remove();
      },
    };
  }

  global.CloudAgentDisposition = { mount: mount, version: 1, release: VERSION };
})(window);
