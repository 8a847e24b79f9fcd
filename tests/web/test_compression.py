"""A page's gzip put together from its pieces (webapp.web.compression.Deflated): the fixed
texts deflated once, the call's values stored between them. What a browser inflates is the
page, byte for byte; a body that is not the pieces' is compressed whole instead."""

import gzip
import random
import zlib

import pytest
from isal import igzip

from tests.helpers import DID, launch_path
from webapp.web import compression
from webapp.web.compression import Deflated, deflate_text, gzip_deflated


def pieces(texts, values):
    encoded = [t.encode() for t in texts]
    placed = tuple(v.encode() for v in values)
    body = b"".join(x for pair in zip(encoded, (*placed, b""), strict=True) for x in pair)
    return Deflated(tuple(map(deflate_text, encoded)), placed, body), body


def inflated(data):
    return zlib.decompress(data, 31)  # zlib's gzip reader, as Chromium's


@pytest.mark.parametrize("seed", range(20))
def test_the_pieces_put_together_inflate_to_the_page(seed):
    rng = random.Random(seed)
    words = ["<option>", "Interested", "कॉलबैक", '"', "&amp;", " " * 7, "\n", "x" * 300]
    count = rng.randint(0, 12)
    texts = ["".join(rng.choices(words, k=rng.randint(0, 400))) for _ in range(count + 1)]
    values = ["".join(rng.choices("ab0&<é", k=rng.randint(0, 200))) for _ in range(count)]
    deflated, body = pieces(texts, values)
    data = gzip_deflated(deflated, body)
    assert inflated(data) == body and gzip.decompress(data) == body
    assert data[:10] == igzip.compress(b"", 1, mtime=0)[:10]  # the same header as before


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body + b"<!-- a layer added this -->",
        lambda body: body.replace(b"value", b"VALUE"),  # the same length, other bytes
    ],
)
def test_a_body_that_is_not_the_pieces_is_compressed_whole(monkeypatch, change):
    deflated, body = pieces(["<p>", "</p>"], ["value"])
    whole = []
    monkeypatch.setattr(
        compression, "_gzip", lambda data: whole.append(data) or igzip.compress(data)
    )
    changed = change(body)
    assert inflated(gzip_deflated(deflated, changed)) == changed
    assert whole == [changed]
    other = bytes(bytearray(body))  # equal bytes, another object
    assert other is not body and inflated(gzip_deflated(deflated, other)) == body
    assert len(whole) == 1


def test_a_value_too_long_for_a_stored_block_has_the_body_compressed_whole():
    deflated, body = pieces(["<p>", "</p>"], ["v" * 70_000])
    assert inflated(gzip_deflated(deflated, body)) == body


def test_a_panel_s_gzip_is_its_pieces_and_not_much_larger_than_compressed(web, call, monkeypatch):
    compressed = []
    real = compression._gzip
    monkeypatch.setattr(compression, "_gzip", lambda data: compressed.append(data) or real(data))
    answer = web.get(launch_path(call.ucid, did=DID), headers={"Accept-Encoding": "gzip"})
    assert answer.headers["Content-Encoding"] == "gzip" and compressed == []
    page = inflated(answer.get_data())
    assert b'name="csrf_token"' in page and call.ucid.encode() in page
    # Values stored as they are and texts deflated apart: ~100 bytes more than ISA-L's.
    assert len(answer.get_data()) <= len(igzip.compress(page, 1, mtime=0)) * 1.05
