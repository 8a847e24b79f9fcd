"""gzip for HTML and fragments: the panel page shrinks to about a third on the wire.

Assets are compressed once at start-up (webapp.web.assets); pages here, per response, with
ISA-L's gzip (python-isal): the same format as zlib's for a third of its CPU. A panel holds
tokens (its context and CSRF token) but no text an attacker chooses beside them: the launch
parameters are signed by the CRM (WIDGET_LAUNCH_SIGNING=off, for development only, gives that
up) and the rest comes from CloudAgent and our catalogues, so compressing it does not open a
BREACH-style leak.
"""

from __future__ import annotations

from functools import lru_cache

from flask import Flask, Response, request
from isal import igzip
from werkzeug.http import parse_accept_header

from .before_send import BEFORE_SEND, Headers

MIN_SIZE = 1024  # below this, gzip's header costs about what it saves
TYPES = ("text/html", "application/json")


@lru_cache(maxsize=256)
def takes_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip: parsed once per distinct header (a
    browser sends the same one every time)."""
    return parse_accept_header(accept_encoding)["gzip"] > 0


def compress(response: Response) -> Response:
    if (
        response.direct_passthrough
        or response.status_code < 200
        or response.status_code in (204, 304)
        or not takes_gzip(request.environ.get("HTTP_ACCEPT_ENCODING", ""))
    ):
        return response
    headers = response.headers
    present, kind, length = set(), "", None
    for name, value in headers:  # one pass: each lookup would scan, a parse of each more
        lower = name.lower()
        present.add(lower)
        if lower == "content-type":
            kind = value
        elif lower == "content-length":
            length = value
    if "content-encoding" in present or kind.partition(";")[0].strip().lower() not in TYPES:
        return response
    later = request.environ.get(BEFORE_SEND)
    if later is not None:  # under the asgi bridge: its loop compresses, just before sending
        # The length set_data gave the body; the body itself is the loop's to read.
        size = int(length) if length and length.isdigit() else len(response.get_data())
        if size < MIN_SIZE:
            return response
        later.append(_gzip_body)
    else:
        data = response.get_data()
        if len(data) < MIN_SIZE:
            return response
        response.set_data(_gzip(data))
    headers.add("Content-Encoding", "gzip")
    if "vary" in present:
        response.vary.add("Accept-Encoding")
    else:
        headers.add("Vary", "Accept-Encoding")
    return response


def _gzip(data: bytes) -> bytes:
    # ISA-L's gzip at level 1: a third of zlib's level 1 CPU for a panel page (30 against
    # 130 µs for 13 KB), and a little smaller; the same gzip format for the browser.
    return igzip.compress(data, 1, mtime=0)


def _gzip_body(headers: Headers, body: bytes) -> bytes:
    """The bridge's loop's part (webapp.push.bridge.BEFORE_SEND): the body gzipped, its
    Content-Length to match. ISA-L lets go of the GIL while it works, which in a pool thread
    cost two context switches whenever the loop was waiting for it."""
    if (b"content-encoding", b"gzip") not in headers:  # not the answer it was asked for
        return body
    data = _gzip(body)
    length = (b"content-length", str(len(data)).encode("latin-1"))
    for index, (name, _) in enumerate(headers):
        if name == b"content-length":
            headers[index] = length
            break
    else:
        headers.append(length)
    return data


def init_app(app: Flask) -> None:
    app.after_request(compress)
