"""/embed.js: the host page's helper at a stable URL, cached, revalidated, usable with
integrity from another site."""

import base64
import gzip
import hashlib

from tests.helpers import ROOT

EMBED = (ROOT / "static" / "embed.js").read_bytes()


def test_embed_js_is_served_cached_revalidated_and_shareable(web):
    response = web.get("/embed.js")
    assert response.status_code == 200 and response.data == EMBED
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # for integrity across sites
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = web.get("/embed.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_embed_js_is_gzipped_for_browsers_that_take_it_and_its_etag_says_so(web):
    packed = web.get("/embed.js", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip" and gzip.decompress(packed.data) == EMBED
    plain = web.get("/embed.js")
    assert packed.headers["ETag"] != plain.headers["ETag"]
    assert "Accept-Encoding" in packed.headers["Vary"]


def test_the_versioned_url_serves_the_same_file_for_good(web, app):
    asset = app.extensions["assets"]["embed.js"]
    digest = base64.b64encode(hashlib.sha384(EMBED).digest()).decode()
    assert asset.integrity == f"sha384-{digest}"
    response = web.get(f"/assets/{asset.digest}/embed.js")
    assert response.data == EMBED
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
