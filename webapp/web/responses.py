"""The app's response class: werkzeug's, without the header copy and the body's wrapping most
answers do not need."""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

from flask import Response as FlaskResponse
from werkzeug.datastructures import Headers

if TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .compression import Deflated

# What werkzeug's get_wsgi_headers rewrites, when a response has it.
_FIXED = frozenset(("location", "content-location"))


class Response(FlaskResponse):
    # The page's pieces for gzip, when a view has them (webapp.web.compression.Deflated).
    deflated: Deflated | None = None

    def get_wsgi_headers(self, environ: WSGIEnvironment) -> Headers:
        # werkzeug copies every header (each checked again: ~70 calls for a panel's ten) and
        # fixes the copy's Location, Content-Location, or length for a 1xx, 204 or 304. An
        # answer with its length, neither location and another status has nothing to fix,
        # and its headers are only listed from here (get_wsgi_response): no copy needed.
        status = self.status_code
        if status >= 200 and status not in (204, 304):
            names = {name.lower() for name, _ in self.headers}
            if "content-length" in names and names.isdisjoint(_FIXED):
                return self.headers
        return super().get_wsgi_headers(environ)

    def get_app_iter(self, environ: WSGIEnvironment) -> Iterable[bytes]:
        # A body set whole (set_data: one bytes object in a list) is its own iterable.
        # werkzeug wraps every body in a generator and a ClosingIterator whose close() has
        # nothing to do for a list, unless call_on_close registered something.
        body = self.response
        if (
            type(body) is list
            and len(body) == 1
            and type(body[0]) is bytes
            and not self._on_close
            and environ["REQUEST_METHOD"] != "HEAD"
        ):
            status = self.status_code
            if status >= 200 and status not in (204, 304):
                return body
        return super().get_app_iter(environ)
