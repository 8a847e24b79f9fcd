"""Demo mode only: a CRM page on another site that embeds the widget, and call controls.

The page is served as http://localhost:<port>/demo and frames the widget from
http://127.0.0.1:<port>: two different sites, as a real CRM and this service would be.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from urllib.parse import urlencode

from babel import Locale
from flask import Blueprint, abort, current_app, jsonify, redirect, render_template, request
from flask.typing import ResponseReturnValue

from . import i18n
from .panel.launch import signed_query
from .panel.theme import THEMES
from .simulator import Simulator
from .simulator.state import SUPPORT_DID, Call
from .web import assets
from .web.headers import content_security_policy

bp = Blueprint("demo", __name__)

AGENT = "agent1"
DID = "914071327663"
# The lines the demo page can take a call on: a short list, and a long one to search.
LINES = {DID: "Sales line (5 dispositions)", SUPPORT_DID: "Support line (60 dispositions)"}


# Calls the demo may start in any minute: each one lives in the simulator's memory until the
# process ends, so a page reloaded in a loop (or a script) must not grow it without bound.
CALLS_PER_MINUTE = 30


class CallBudget:
    """Counts the calls started in the last minute (sliding), across threads."""

    def __init__(
        self, limit: int = CALLS_PER_MINUTE, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.limit = limit
        self.clock = clock
        self._started: deque[float] = deque()
        self._lock = threading.Lock()

    def take(self) -> bool:
        """True, and one call counted, if another may start now."""
        with self._lock:
            now = self.clock()
            while self._started and now - self._started[0] >= 60:
                self._started.popleft()
            if len(self._started) >= self.limit:
                return False
            self._started.append(now)
            return True


def _budget() -> CallBudget:
    return current_app.extensions.setdefault("demo_calls", CallBudget())


def _page_call() -> Call:
    """The call the demo page shows: the agent's newest live call on the sales line with no
    disposition yet (a reload costs nothing), else a new one within the minute's budget,
    else the agent's newest call whatever its state."""
    calls = [c for c in _simulator().list_calls() if c.agent_id == AGENT and c.did == DID]
    calls.sort(key=lambda c: c.started_at)
    for call in reversed(calls):
        if call.state == "live" and call.pending is None and call.applied is None:
            return call
    if not calls or _budget().take():
        return _simulator().start_call(AGENT, DID)
    return calls[-1]


def _subscribe_to_ourselves() -> None:
    """Demo mode plays the account's administrator too: the simulator sends its call events
    and call summaries to this widget's own receivers, as `flask cloudagent subscribe` and the
    account's Callback URL setting do for a real account. Done when the demo page is first
    served: only then is the widget's address known (whatever port gunicorn was given)."""
    settings = current_app.config["WIDGET"]
    events = _simulator().events
    if not settings.events_token or events.subscription(settings.cloudagent_username):
        return
    base = f"{widget_origin()}/cloudagent/events/{settings.events_token}"
    events.subscribe(settings.cloudagent_username, f"{base}/call", "")
    events.set_callback_url(settings.cloudagent_username, f"{base}/summary")


def _languages() -> dict[str, str]:
    """The widget's languages, each named in itself (English, हिन्दी)."""
    return {code: Locale.parse(code).display_name or code for code in i18n.languages()}


def _simulator() -> Simulator:
    return current_app.extensions["simulator"]


def _port() -> str:
    return request.host.rpartition(":")[2] if ":" in request.host else "80"


def widget_origin() -> str:
    return f"http://127.0.0.1:{_port()}"


def _call_json(ucid: str, theme: str = "auto", lang: str = "") -> dict[str, object]:
    call = _simulator().get_call(ucid)
    if call is None:
        abort(404)
    return {
        "ucid": call.ucid,
        "state": call.state,
        "disposition": call.disposition or call.queued,
        "launch": launch_url(call.ucid, call.agent_id, call.did, theme, lang),
        # The wrap-up time CloudAgent's Disconnect starts in the panel (WIDGET_WRAPUP_SECONDS,
        # in demo mode the simulator's own unless set).
        "wrapupSeconds": current_app.config["WIDGET"].wrapup_seconds or 0,
    }


def launch_url(ucid: str, agent_id: str, did: str, theme: str = "auto", lang: str = "") -> str:
    """What the CRM's server does: sign the call's parameters with the shared secret (and
    the agent's language, which a CRM knows)."""
    params = {"ucid": ucid, "agentID": agent_id, "did": did, "callerID": "+919800000000"}
    if theme != "auto":
        params["theme"] = theme
    if lang:
        params["lang"] = lang
    query = signed_query(params, current_app.config["WIDGET"].launch_secret)
    return f"{widget_origin()}/disposition?{urlencode(query)}"


@bp.before_request
def same_origin_only() -> ResponseReturnValue | None:
    # The controls change the simulator: only the demo page itself may call them.
    if request.method == "POST" and request.headers.get("Sec-Fetch-Site") not in (
        None,
        "same-origin",
    ):
        abort(403)
    return None


@bp.get("/")
@bp.get("/demo")
def page() -> ResponseReturnValue:
    if request.host.partition(":")[0] != "localhost":
        # Keep the demo cross-site: the page on localhost, the widget on 127.0.0.1.
        return redirect(f"http://localhost:{_port()}/demo")
    i18n.use("en")  # the demo CRM page is English, whatever the browser prefers
    _subscribe_to_ourselves()
    call = _page_call()
    response = current_app.make_response(
        render_template(
            "demo.html",
            call=_call_json(call.ucid),
            widget_origin=widget_origin(),
            lines=LINES,
            languages=_languages(),
            theme="light",
            embed_version=assets.newest_embed()[0],
        )
    )
    response.headers["Content-Security-Policy"] = content_security_policy(
        "'self'",
        frame_src=widget_origin(),
        style_hashes=assets.inline_css_hash(current_app.extensions["assets"]),
        script_src=f"'self' {widget_origin()}",  # the widget's embed.js
    )
    return response


@bp.post("/demo/calls")
def new_call() -> ResponseReturnValue:
    asked = request.get_json(silent=True) or {}
    did, theme = asked.get("did", DID), asked.get("theme", "auto")
    lang = asked.get("lang", "")
    if did not in LINES or theme not in THEMES or (lang and lang not in _languages()):
        abort(400)
    if not _budget().take():
        response = jsonify(error=f"at most {CALLS_PER_MINUTE} new calls a minute")
        response.headers["Retry-After"] = "60"
        return response, 429
    call = _simulator().start_call(AGENT, did)
    return jsonify(_call_json(call.ucid, theme, lang)), 201


@bp.get("/demo/calls/<ucid>")
def call_state(ucid: str) -> ResponseReturnValue:
    """The call, with a launch link in the look and language asked for (a panel re-opened)."""
    theme, lang = request.args.get("theme", "auto"), request.args.get("lang", "")
    if theme not in THEMES or (lang and lang not in _languages()):
        abort(400)
    return jsonify(_call_json(ucid, theme, lang))


@bp.post("/demo/calls/<ucid>/hangup")
def hang_up(ucid: str) -> ResponseReturnValue:
    _call_json(ucid)  # 404 for an unknown call
    _simulator().hang_up(ucid)
    return jsonify(_call_json(ucid))


@bp.post("/demo/calls/<ucid>/expire-wrapup")
def expire_wrapup(ucid: str) -> ResponseReturnValue:
    _call_json(ucid)
    _simulator().expire_wrapup(ucid)
    return jsonify(_call_json(ucid))
