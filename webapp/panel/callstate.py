"""What CloudAgent said about the panel's call (webapp.events), as the page carries it for
panel.js's applyCallState(): the same shape a push message will have.

`{"ucid", "ended": true, "wrapupLeft": seconds | null, "confirmed": null | {"disposition",
"matches", "auto"}}`, or nothing when the call has not ended as far as CloudAgent said.
"""

from __future__ import annotations

import json
import logging
from typing import Any
from urllib.parse import quote

from flask import Flask, current_app
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup
from sqlalchemy.exc import SQLAlchemyError

from ..events import CallState

log = logging.getLogger("webapp.panel")


def as_message(state: CallState, wrapup_seconds: int | None) -> dict[str, Any] | None:
    """The state as panel.js takes it; None when there is nothing to show."""
    if not state.ended:
        return None
    confirmed = None
    if state.confirmed_disposition is not None:
        confirmed = {
            "disposition": state.confirmed_disposition,
            "matches": state.matches,  # null: the widget saved nothing for the call
            "auto": state.auto,
        }
    return {
        "ucid": state.ucid,
        "ended": True,
        "wrapupLeft": state.wrapup_left(wrapup_seconds),
        "confirmed": confirmed,
        "id": state.last_id,
    }


def for_page(ucid: str, app: Flask | None = None) -> Markup | None:
    """The call's state as JSON safe in an HTML attribute, when the receivers are on and
    CloudAgent said something; None otherwise, or when the database cannot say (the panel
    works without it). `app`, when the caller holds it, is not looked up again."""
    app = app or current_app._get_current_object()
    settings = app.config["WIDGET"]
    if not settings.events_token:
        return None
    try:
        state = app.extensions["call_events"].call_state(ucid)
    except (SQLAlchemyError, OSError) as error:
        log.warning("call state not read (the panel opens without it): %s", error)
        return None
    message = as_message(state, settings.wrapup_seconds)
    if message is None:
        return None
    return htmlsafe_json_dumps(message, dumps=json.dumps, ensure_ascii=False)


def events_url(token: str, app: Flask | None = None) -> str | None:
    """Where the open panel hears of its call live (webapp.push), when this process serves
    that stream (gunicorn's asgi worker with the receivers on); None otherwise, and the
    panel shows only what the page carries."""
    if "push" not in (app or current_app).extensions:
        return None
    return "/disposition/events?context=" + quote(token, safe="")
