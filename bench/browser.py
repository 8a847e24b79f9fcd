"""The browser figures, a process of its own: `python -m bench.browser CONFIG.json OUT.json`.

Debian's headless Chromium, driven by Playwright, opens panels on the loopback widget:

- first load, in a fresh browser context (empty cache): the requests that went to the network
  and the bytes received for them;
- repeat load, a new page in the same context (the next call's panel): the same counts;
- time from navigation to an enabled form, over many loads, both with an empty cache (a fresh
  context each) and with assets cached.

What went to the network is read from the DevTools protocol (Network domain): a request counts
when Chromium announced it (`requestWillBeSent`), it was not answered from the memory cache
(`requestServedFromCache`), its response is not marked `fromDiskCache`, `fromPrefetchCache` or
`fromServiceWorker`, and its URL is not a `data:` URL. Its bytes on the wire are
`loadingFinished.encodedDataLength`: the response's headers plus its body as transferred, that
is compressed when the server compressed it.

Search: the panel of a DID with 500 dispositions, and queries typed into its search box one
key at a time. Per keystroke, "work" runs from the keydown event to the end of the panel's
filtering plus the style and layout it causes (forced at once by reading the list's size):
the main thread's time, which must fit in a 60 Hz frame (16 ms). "To the next frame" adds the
wait for the next animation frame, which includes vsync and is reported beside it.

"Enabled form" is the first moment at which the panel's Save button exists and is not disabled
and htmx has wired the form (htmx 4 marks an element it has processed with
`data-htmx-powered`, after attaching its listeners). An init script, which runs in each
document before the page's own scripts, watches for that with a MutationObserver and records
`performance.now()`, which counts from the navigation's start (`performance.timeOrigin`).
"""

from __future__ import annotations

import json
import sys
import time

from .common import launch_path, median, percentile

CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

READY_SCRIPT = """
(() => {
  const check = () => {
    if (window.__benchReady !== undefined) return;
    const form = document.getElementById("panel-form");
    const save = document.getElementById("save");
    if (form && save && !save.disabled && form.hasAttribute("data-htmx-powered")) {
      window.__benchReady = performance.now();
      observer.disconnect();
    }
  };
  const observer = new MutationObserver(check);
  observer.observe(document, {
    subtree: true, childList: true, attributes: true,
    attributeFilter: ["data-htmx-powered", "disabled"],
  });
  document.addEventListener("DOMContentLoaded", () => setTimeout(check));
})();
"""

KEYSTROKE_TIMER = """() => {
  const search = document.getElementById("disposition-search");
  const select = document.getElementById("disposition");
  window.__benchKeys = [];
  let down = null;
  search.addEventListener("keydown", (event) => { down = event.timeStamp; }, true);
  // Added after the panel's own listener: it runs once the list is filtered.
  search.addEventListener("input", () => {
    if (down === null) return;
    const start = down;
    down = null;
    void select.offsetHeight;  // the filter's style and layout, now rather than at the frame
    const work = performance.now() - start;
    requestAnimationFrame(() => setTimeout(() => {
      window.__benchKeys.push({ work, frame: performance.now() - start });
    }));
  });
  return select.options.length - 1;
}"""
# Resolves once `count` keystrokes are timed. A function, not wait_for_function's string: the
# panel's CSP forbids the eval that polling a string would need.
TIMED = """(count) => new Promise((resolve) => {
  const check = () => (window.__benchKeys.length >= count ? resolve() : setTimeout(check, 1));
  check();
})"""
# What agents type: whole words, partial ones, a space too many, and corrections.
SEARCH_QUERIES = ["refund", "call back", "kyc  doc", "order st", "paymnt", "delivery - esc"]

NAV_TIMING = """() => {
  const n = performance.getEntriesByType("navigation")[0];
  return {
    ready_ms: window.__benchReady,
    response_start_ms: n.responseStart,
    response_end_ms: n.responseEnd,
    dom_interactive_ms: n.domInteractive,
    dom_content_loaded_ms: n.domContentLoadedEventEnd,
    load_ms: n.loadEventEnd,
  };
}"""


class NetworkLog:
    """The Network domain's events for one page, reduced to what went on the wire."""

    def __init__(self, context, page) -> None:
        self.requests: dict[str, dict] = {}
        self.cdp = context.new_cdp_session(page)
        self.cdp.on("Network.requestWillBeSent", self._sent)
        self.cdp.on("Network.requestServedFromCache", self._from_cache)
        self.cdp.on("Network.responseReceived", self._response)
        self.cdp.on("Network.loadingFinished", self._finished)
        self.cdp.on("Network.loadingFailed", self._failed)
        self.cdp.send("Network.enable")

    def _entry(self, request_id: str) -> dict:
        return self.requests.setdefault(request_id, {"id": request_id})

    def _sent(self, event: dict) -> None:
        entry = self._entry(event["requestId"])
        entry["url"] = event["request"]["url"]
        entry["type"] = event.get("type")

    def _from_cache(self, event: dict) -> None:
        self._entry(event["requestId"])["memory_cache"] = True

    def _response(self, event: dict) -> None:
        response = event["response"]
        headers = {k.lower(): v for k, v in response.get("headers", {}).items()}
        self._entry(event["requestId"]).update(
            status=response.get("status"),
            disk_cache=bool(response.get("fromDiskCache")),
            prefetch_cache=bool(response.get("fromPrefetchCache")),
            service_worker=bool(response.get("fromServiceWorker")),
            content_encoding=headers.get("content-encoding", ""),
            content_type=headers.get("content-type", ""),
            headers_bytes=response.get("encodedDataLength", 0),
            protocol=response.get("protocol"),
        )

    def _finished(self, event: dict) -> None:
        self._entry(event["requestId"])["wire_bytes"] = event.get("encodedDataLength", 0)

    def _failed(self, event: dict) -> None:
        self._entry(event["requestId"])["failed"] = event.get("errorText")

    def wire(self) -> list[dict]:
        return [
            r
            for r in self.requests.values()
            if not r.get("url", "").startswith("data:")
            and not r.get("memory_cache")
            and not r.get("disk_cache")
            and not r.get("prefetch_cache")
            and not r.get("service_worker")
        ]

    def summary(self) -> dict:
        wire = self.wire()
        return {
            "requests": len(wire),
            "bytes": sum(r.get("wire_bytes", 0) for r in wire),
            "body_bytes": sum(r.get("wire_bytes", 0) - r.get("headers_bytes", 0) for r in wire),
            "all_requests": len([r for r in self.requests.values() if "url" in r]),
            "detail": [
                {
                    "path": r.get("url", "").split("?")[0].split("/", 3)[-1],
                    "status": r.get("status"),
                    "encoding": r.get("content_encoding") or "identity",
                    "wire_bytes": r.get("wire_bytes"),
                    "on_network": r in wire,
                    "memory_cache": bool(r.get("memory_cache")),
                    "disk_cache": bool(r.get("disk_cache")),
                    **({"failed": r["failed"]} if "failed" in r else {}),
                }
                for r in self.requests.values()
                if "url" in r
            ],
        }


def _ready(page, timeout_ms: float = 10_000) -> dict:
    page.wait_for_function("window.__benchReady !== undefined", timeout=timeout_ms)
    return page.evaluate(NAV_TIMING)


def _settled(page) -> None:
    """Anything the page still loads after the form is ready is counted too."""
    page.wait_for_load_state("networkidle")


def run(config: dict) -> dict:
    from playwright.sync_api import sync_playwright

    urls = iter(
        config["widget_url"] + launch_path(c["ucid"], c["agent"], c["did"], config["secret"])
        for c in config["calls"]
    )
    loads = config.get("loads", 20)
    result: dict = {}
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=config["chromium"], args=CHROMIUM_ARGS)
        result["chromium"] = browser.version

        # Not measured: the browser's own first-use costs, and the service's first page.
        context = browser.new_context()
        context.add_init_script(READY_SCRIPT)
        context.new_page().goto(next(urls))
        context.close()

        # First load, empty cache; then the next call's panel in the same context. Every
        # request carries an X-Request-ID naming the load, so the widget's own log can tell how
        # many reached it (a cross-check of the DevTools count).
        context = browser.new_context()
        context.add_init_script(READY_SCRIPT)
        for name in ("first", "repeat"):
            context.set_extra_http_headers({"X-Request-ID": f"bench-browser-{name}.0"})
            page = context.new_page()
            log = NetworkLog(context, page)
            page.goto(next(urls))
            result[f"{name}_load_timing"] = _ready(page)
            _settled(page)
            result[f"{name}_load"] = log.summary()
        context.close()

        # Time to an enabled form: `loads` loads with an empty cache, a fresh context each...
        cold = []
        for _ in range(loads):
            context = browser.new_context()
            context.add_init_script(READY_SCRIPT)
            page = context.new_page()
            page.goto(next(urls))
            cold.append(_ready(page))
            context.close()
        # ...and `loads` loads in one context, assets cached after the first (not counted).
        context = browser.new_context()
        context.add_init_script(READY_SCRIPT)
        page = context.new_page()
        page.goto(next(urls))
        _ready(page)
        warm = []
        for _ in range(loads):
            page.goto(next(urls))
            warm.append(_ready(page))
        context.close()

        search = config.get("search_call")
        if search:
            result["search_keystrokes"] = keystrokes(browser, config, search)
        browser.close()

    for name, samples in (("cold", cold), ("warm", warm)):
        ready = [s["ready_ms"] for s in samples]
        result[f"ready_{name}"] = {
            "loads": len(samples),
            "median_ms": round(median(ready), 1),
            "p90_ms": round(percentile(ready, 90), 1),
            "min_ms": round(min(ready), 1),
            "max_ms": round(max(ready), 1),
            # Where the time goes, medians over the same loads.
            "response_start_ms": round(median([s["response_start_ms"] for s in samples]), 1),
            "response_end_ms": round(median([s["response_end_ms"] for s in samples]), 1),
            "dom_interactive_ms": round(median([s["dom_interactive_ms"] for s in samples]), 1),
            "dom_content_loaded_ms": round(
                median([s["dom_content_loaded_ms"] for s in samples]), 1
            ),
            "samples_ms": [round(v, 1) for v in ready],
        }
    return result


def keystrokes(browser, config: dict, call: dict, rounds: int = 3) -> dict:
    """Queries typed into the search box of a long list, key by key, `rounds` times."""
    context = browser.new_context()
    context.add_init_script(READY_SCRIPT)
    page = context.new_page()
    url = launch_path(call["ucid"], call["agent"], call["did"], config["secret"])
    page.goto(config["widget_url"] + url)
    _ready(page)
    options = page.evaluate(KEYSTROKE_TIMER)
    box = page.locator("#disposition-search")
    typed = 0
    for _ in range(rounds):
        for query in SEARCH_QUERIES:
            box.focus()
            for key in query:
                page.keyboard.press("Space" if key == " " else key)
                typed += 1
                # One keystroke at a time: the next waits until this one has been timed.
                page.evaluate(TIMED, typed)
            page.keyboard.press("Escape")  # clears the search: not a keystroke measured
    samples = page.evaluate("window.__benchKeys")
    context.close()
    work = [s["work"] for s in samples]
    frame = [s["frame"] for s in samples]
    return {
        "dispositions": options,
        "keystrokes": len(samples),
        "work_p50_ms": round(median(work), 2),
        "work_p95_ms": round(percentile(work, 95), 2),
        "work_max_ms": round(max(work), 2),
        "frame_p50_ms": round(median(frame), 1),
        "frame_p95_ms": round(percentile(frame, 95), 1),
    }


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    with open(args[0]) as handle:
        config = json.load(handle)
    began = time.perf_counter()
    result = run(config)
    result["seconds"] = round(time.perf_counter() - began, 1)
    with open(args[1], "w") as handle:
        json.dump(result, handle, indent=1)


if __name__ == "__main__":
    main()
