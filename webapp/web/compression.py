"""gzip for HTML and fragments: the panel page shrinks to about a third on the wire.

Assets are compressed once at start-up (webapp.web.assets); pages here, per response, with
ISA-L's gzip (python-isal): the same format as zlib's for a third of its CPU. A page made
from a shell (webapp.panel.shells) comes with its fixed text deflated once, and its gzip is
that text put together with the call's values in stored blocks (`Deflated`): no compressing
per panel, for some 100 bytes more on the wire (docs/benchmarks.md, "Fifth round"). A panel holds
tokens (its context and CSRF token) but no text an attacker chooses beside them: the launch
parameters are signed by the CRM (WIDGET_LAUNCH_SIGNING=off, for development only, gives that
up) and the rest comes from CloudAgent and our catalogues, so compressing it does not open a
BREACH-style leak.
"""

from __future__ import annotations

import struct
import zlib
from functools import lru_cache, partial
from typing import NamedTuple

from flask import Flask, Response, request
from isal import igzip, isal_zlib
from werkzeug.http import parse_accept_header

from .before_send import BEFORE_SEND, Headers

MIN_SIZE = 1024  # below this, gzip's header costs about what it saves
TYPES = ("text/html", "application/json")


@lru_cache(maxsize=256)
def takes_gzip(accept_encoding: str) -> bool:
    """Whether an Accept-Encoding header takes gzip: parsed once per distinct header (a
    browser sends the same one every time)."""
    return parse_accept_header(accept_encoding)["gzip"] > 0


class Deflated(NamedTuple):
    """A page in the pieces of one deflate stream: its fixed texts, each deflated once
    (deflate_text), and between them this answer's values, as the page has them."""

    texts: tuple[bytes, ...]  # one more than the values
    values: tuple[bytes, ...]
    body: bytes  # the page the pieces make: the response's body, the very object


def deflate_text(text: bytes) -> bytes:
    """One fixed text deflated (raw, at level 9), ending on a byte boundary and without the
    stream's end: a piece any other piece may follow."""
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9)
    return compressor.compress(text) + compressor.flush(zlib.Z_SYNC_FLUSH)


_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff"  # as igzip's, at mtime 0
_LAST_BLOCK = b"\x01\x00\x00\xff\xff"  # an empty stored block that ends the stream
_STORED_MAX = 0xFFFF
_STORED_HEADER = struct.Struct("<BHH").pack  # a stored block's: not the last, LEN, NLEN
_TRAILER = struct.Struct("<II").pack  # CRC-32, ISIZE
_CRC_CHUNK = 5 * 1024  # ISA-L's crc32 lets go of the GIL past 5 KiB (see _gzip_body)


def gzip_deflated(deflated: Deflated, body: bytes) -> bytes:
    """`body`'s gzip from its pieces: each value in a stored block between the texts, the
    CRC over the body. A body that is not the pieces' (a layer changed or replaced it) is
    compressed whole. The check costs nothing when the body is the very bytes the pieces
    were made with, as a panel's is (compared byte for byte otherwise)."""
    if body is not deflated.body and body != deflated.body:
        return _gzip(body)
    texts = deflated.texts
    out = [_GZIP_HEADER, texts[0]]
    for value, text in zip(deflated.values, texts[1:], strict=True):
        size = len(value)
        if size > _STORED_MAX:  # no stored block holds it (no call value comes near)
            return _gzip(body)
        out += (_STORED_HEADER(0, size, size ^ _STORED_MAX), value, text)
    crc, view = 0, memoryview(body)
    for start in range(0, len(body), _CRC_CHUNK):
        crc = isal_zlib.crc32(view[start : start + _CRC_CHUNK], crc)
    out += (_LAST_BLOCK, _TRAILER(crc, len(body) & 0xFFFFFFFF))
    return b"".join(out)


def compress(response: Response) -> Response:
    environ = request.environ  # looked through once: every answer comes here
    if (
        response.direct_passthrough
        or response.status_code < 200
        or response.status_code in (204, 304)
        or not takes_gzip(environ.get("HTTP_ACCEPT_ENCODING", ""))
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
    deflated: Deflated | None = getattr(response, "deflated", None)  # webapp.web.responses
    later = environ.get(BEFORE_SEND)
    if later is not None:  # under the asgi bridge: its loop compresses, just before sending
        # The length set_data gave the body; the body itself is the loop's to read.
        size = int(length) if length and length.isdigit() else len(response.get_data())
        if size < MIN_SIZE:
            return response
        # One gzip per answer: a hook that fails after this one has Flask run every hook
        # again on its error page, which must be gzipped once, and not from the pieces.
        if later:
            later[:] = [work for work in later if getattr(work, "func", work) is not _gzip_body]
        later.append(_gzip_body if deflated is None else partial(_gzip_body, deflated=deflated))
    else:
        data = response.get_data()
        if len(data) < MIN_SIZE:
            return response
        response.set_data(_gzip(data) if deflated is None else gzip_deflated(deflated, data))
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


def _gzip_body(headers: Headers, body: bytes, deflated: Deflated | None = None) -> bytes:
    """The bridge's loop's part (webapp.push.bridge.BEFORE_SEND): the body gzipped, its
    Content-Length to match. ISA-L lets go of the GIL while it works, which in a pool thread
    cost two context switches whenever the loop was waiting for it."""
    if (b"content-encoding", b"gzip") not in headers:  # not the answer it was asked for
        return body
    data = _gzip(body) if deflated is None else gzip_deflated(deflated, body)
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
