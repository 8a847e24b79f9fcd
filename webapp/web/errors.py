"""Error answers: small pages for browsers, outcome fragments for htmx; never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from flask_babel import lazy_gettext
from werkzeug.exceptions import HTTPException, InternalServerError

from .. import i18n
from ..i18n import gettext as _
from .logs import logged_path

log = logging.getLogger("webapp")

# Werkzeug's names of the errors a panel can meet, in the agent's language.
NAMES = {
    400: lazy_gettext("Bad Request"),
    403: lazy_gettext("Forbidden"),
    404: lazy_gettext("Not Found"),
    405: lazy_gettext("Method Not Allowed"),
    413: lazy_gettext("Request Entity Too Large"),
    429: lazy_gettext("Too Many Requests"),
    500: lazy_gettext("Internal Server Error"),
    503: lazy_gettext("Service Unavailable"),
}


# What a host page is told when an error page stands in its frame instead of the panel
# (`refused` event, docs/embedding.md); the launch link's own reasons are in panel/launch.py.
NOT_FOUND = "not_found"
BAD_REQUEST = "bad_request"
SERVER_ERROR = "server_error"


def refusal_reason(code: int) -> str:
    if code >= 500:
        return SERVER_ERROR
    return NOT_FOUND if code in (404, 405) else BAD_REQUEST


def error_page(code: int, name: str) -> ResponseReturnValue:
    """A small page for a browser. `name` is werkzeug's English one, shown only in English:
    in another language an error without a translated name is just "Error"."""
    known = NAMES.get(code)
    if known is None and i18n.current() != i18n.SOURCE_LANGUAGE:
        known = _("Error")
    page = render_template(
        i18n.template("error.html"),
        code=code,
        name=str(known or name),
        refused=refusal_reason(code),
    )
    return page, code


def _answer(error: HTTPException) -> ResponseReturnValue:
    code = error.code or 500
    if error.response is not None:  # abort(response): the view already chose the answer
        return error.response
    if request.headers.get("HX-Request"):
        message = (
            _(
                "Something went wrong in the disposition service, so the result is unknown. "
                "Save again: if it was already recorded, you will be told."
            )
            if code >= 500
            else _(
                "The panel sent a request the service could not take. Open it again from the CRM."
            )
        )
        kind = "unavailable" if code >= 500 else "invalid"
        return (
            render_template(
                i18n.template("_outcome.html"),
                kind=kind,
                message=message,
                call=None,
                unknown=code >= 500,
            ),
            code,
        )
    return error_page(code, error.name)


def _crash(error: Exception) -> ResponseReturnValue:
    log.exception("unhandled error on %s %s", request.method, logged_path(request.path))
    return _answer(InternalServerError())


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _answer)
    app.register_error_handler(Exception, _crash)
