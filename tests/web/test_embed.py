"""The host page's helper in releases: each at its own URL for good, the newest of a major
version at a moving URL, a list of them, and /embed.js frozen at the release the first guide
published with its integrity (docs/embedding.md, "Upgrades")."""

import base64
import gzip
import hashlib
import json

from tests.helpers import ROOT

RELEASES = ROOT / "static" / "embed"
# Every release ever published, with the integrity CRM pages pinned: a released file never
# changes. A new release adds a line here and a file there, nothing else.
PUBLISHED = json.loads((ROOT / "tests" / "data" / "embed_releases.json").read_text())
LEGACY = (RELEASES / "1.0.0.js").read_bytes()


def integrity(data: bytes) -> str:
    return "sha384-" + base64.b64encode(hashlib.sha384(data).digest()).decode()


def test_every_published_release_is_kept_byte_for_byte():
    files = {path.stem: path.read_bytes() for path in RELEASES.glob("*.js")}
    assert set(files) == set(PUBLISHED), "a release was added or removed without the other"
    for version, published in PUBLISHED.items():
        assert integrity(files[version]) == published, f"release {version} changed"


def test_the_first_guides_embed_js_is_release_1_0_0_for_good(web):
    # The hash docs/embedding.md published before releases existed: pages pinned it.
    first_guide = "sha384-Zaclt3L4zmzzifpNun+zYVxEmJKlcQizze8xePMbyCBjeelg89V/yIU8z+otjB1D"
    assert integrity(LEGACY) == first_guide
    response = web.get("/embed.js")
    assert response.status_code == 200 and response.data == LEGACY
    assert response.mimetype == "text/javascript"
    assert response.headers["Cache-Control"] == "public, max-age=3600"
    assert response.headers["Access-Control-Allow-Origin"] == "*"  # for integrity across sites
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    again = web.get("/embed.js", headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304 and again.data == b""


def test_embed_js_is_gzipped_for_browsers_that_take_it_and_its_etag_says_so(web):
    packed = web.get("/embed.js", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip" and gzip.decompress(packed.data) == LEGACY
    plain = web.get("/embed.js")
    assert packed.headers["ETag"] != plain.headers["ETag"]
    assert "Accept-Encoding" in packed.headers["Vary"]


def test_the_first_guides_versioned_url_still_serves_release_1_0_0(web, app):
    asset = app.extensions["assets"]["embed.js"]
    assert asset.integrity == PUBLISHED["1.0.0"]
    response = web.get(f"/assets/{asset.digest}/embed.js")
    assert response.data == LEGACY
    assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_each_release_has_its_own_url_cached_for_good(web):
    for version, published in PUBLISHED.items():
        response = web.get(f"/embed/{version}.js")
        assert response.status_code == 200, version
        assert integrity(response.data) == published
        assert response.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert response.headers["Access-Control-Allow-Origin"] == "*"
    for unknown in ("0.9.0.js", "1.1.js", "v0.js", "v1.0.js", "1.1.0.js.map", "..%2Fpanel.js"):
        assert web.get(f"/embed/{unknown}").status_code == 404, unknown


def test_the_release_list_and_the_moving_major_url_name_the_newest(web):
    listed = web.get("/embed/releases.json")
    assert listed.status_code == 200 and listed.headers["Access-Control-Allow-Origin"] == "*"
    body = listed.get_json()
    newest = max(PUBLISHED, key=lambda v: tuple(map(int, v.split("."))))
    assert body["latest"] == newest
    assert body["releases"] == [
        {"version": v, "url": f"/embed/{v}.js", "integrity": PUBLISHED[v]}
        for v in sorted(PUBLISHED, key=lambda v: tuple(map(int, v.split("."))))
    ]
    moving = web.get("/embed/v1.js")
    assert integrity(moving.data) == PUBLISHED[newest]
    assert moving.headers["Cache-Control"] == "public, max-age=3600"
    again = web.get("/embed/v1.js", headers={"If-None-Match": moving.headers["ETag"]})
    assert again.status_code == 304
