"""Error answers: small pages for browsers, outcome fragments for htmx; never a stack trace."""

from __future__ import annotations

import logging

from flask import Flask, render_template, request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger("webapp")


def _answer(error: HTTPException) -> ResponseReturnValue:
    code = error.code or 500
    if error.response is not None:  # abort(response): the view already chose the answer
        return error.response
    if request.headers.get("HX-Request"):
        message = (
            "Something went wrong in the disposition service, so the result is unknown. "
            "Save again: if it was already recorded, you will be told."
            if code >= 500
            else "The panel sent a request the service could not take. Open it again from the CRM."
        )
        kind = "unavailable" if code >= 500 else "invalid"
        return (
            render_template(
                "_outcome.html", kind=kind, message=message, call=None, unknown=code >= 500
            ),
            code,
        )
    return render_template("error.html", code=code, name=error.name), code


def _crash(error: Exception) -> ResponseReturnValue:
    log.exception("unhandled error on %s %s", request.method, request.path)
    return _answer(InternalServerError())


def init_app(app: Flask) -> None:
    app.register_error_handler(HTTPException, _answer)
    app.register_error_handler(Exception, _crash)
