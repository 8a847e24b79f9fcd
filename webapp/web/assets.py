"""Static assets under content-hashed URLs, cached for a year, with integrity hashes.

`asset_url("panel.js")` is `/assets/<hash>/panel.js`: the URL changes whenever the file does,
so browsers keep it for good and a repeat panel load fetches only the HTML. The files are
small, so they are read once at start-up, our own scripts and stylesheets minified (the repo
keeps them readable, with their comments), and served from memory, compressed with Brotli or
gzip when the browser takes it. The panel's stylesheet is inlined in each page instead (one
request fewer on the first load), allowed by its hash in the Content-Security-Policy.
Integrity hashes are over the bytes served.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import mimetypes
import re
from dataclasses import dataclass
from pathlib import Path

import brotli
import rcssmin
import rjsmin
from flask import Blueprint, Response, abort, current_app, jsonify, request
from flask.typing import ResponseReturnValue
from markupsafe import Markup

IMMUTABLE = "public, max-age=31536000, immutable"
# The host page's helper comes in releases, static/embed/<version>.js, each kept as released for
# good (tests/data/embed_releases.json holds their hashes): a page that pins one with its
# integrity never breaks on an upgrade (docs/embedding.md, "Upgrades").
#   /embed/<version>.js  one release, cached for good;
#   /embed/v<major>.js   the newest release of that major version: compatible, moving, so
#                        cached an hour and revalidated by its ETag (no integrity: it changes);
#   /embed/releases.json every release with its URL and integrity, newest last;
#   /embed.js            release 1.0.0, whose integrity the first guide published: frozen.
EMBED_RELEASE = re.compile(r"embed/([0-9]+)\.([0-9]+)\.([0-9]+)\.js")
EMBED_LEGACY = "embed.js"  # also /assets/<hash>/embed.js, as the first guide named it
EMBED_LEGACY_RELEASE = "embed/1.0.0.js"
EMBED_CACHE = "public, max-age=3600"
RELEASES_CACHE = "public, max-age=300"
INLINE_CSS = "panel.css"
COMPRESSIBLE = (".js", ".css", ".svg", ".txt", ".json")
# Served as they are: the vendored build (already minified, its integrity published by its
# authors) and the embed releases (CRM pages pin the hash of the file in the repo).
AS_IS = ("vendor/", "embed/")

bp = Blueprint("assets", __name__)


@dataclass(frozen=True)
class Asset:
    digest: str  # short hex of the content, the URL's version
    integrity: str  # Subresource Integrity value for <script>/<link>
    data: bytes
    gzipped: bytes | None
    mimetype: str
    brotli: bytes | None = None


def _minified(name: str, data: bytes) -> bytes:
    if name.startswith(AS_IS):
        return data
    if name.endswith(".js"):
        return rjsmin.jsmin(data.decode(), keep_bang_comments=True).encode()
    if name.endswith(".css"):
        return rcssmin.cssmin(data.decode(), keep_bang_comments=True).encode()
    return data


def build_manifest(folder: Path) -> dict[str, Asset]:
    """Read, hash and compress every file under the static folder once, at start-up."""
    manifest = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        name = path.relative_to(folder).as_posix()
        data = _minified(name, path.read_bytes())
        sha384 = base64.b64encode(hashlib.sha384(data).digest()).decode()
        compressible = path.suffix in COMPRESSIBLE
        packed = gzip.compress(data, 9, mtime=0) if compressible else None
        squeezed = brotli.compress(data, quality=11) if compressible else None
        manifest[name] = Asset(
            digest=hashlib.sha256(data).hexdigest()[:12],
            integrity=f"sha384-{sha384}",
            data=data,
            gzipped=packed if packed and len(packed) < len(data) else None,
            mimetype=mimetypes.guess_type(path.name)[0] or "application/octet-stream",
            brotli=squeezed if squeezed and len(squeezed) < len(data) else None,
        )
    if EMBED_LEGACY_RELEASE in manifest:
        manifest[EMBED_LEGACY] = manifest[EMBED_LEGACY_RELEASE]
    return manifest


def embed_releases(manifest: dict[str, Asset]) -> dict[str, Asset]:
    """The embed releases by version ("1.1.0"), oldest first."""
    found = {}
    for name, asset in manifest.items():
        match = EMBED_RELEASE.fullmatch(name)
        if match:
            found[tuple(int(part) for part in match.groups())] = asset
    return {".".join(map(str, version)): found[version] for version in sorted(found)}


def newest_embed(major: int = 1) -> tuple[str, Asset]:
    """The newest release of a major version: its version and file."""
    releases = embed_releases(_manifest())
    version = [v for v in releases if v.split(".")[0] == str(major)][-1]
    return version, releases[version]


def inline_css_hash(manifest: dict[str, Asset]) -> str:
    """The CSP source that allows the inlined stylesheet, and only it."""
    digest = hashlib.sha256(manifest[INLINE_CSS].data).digest()
    return f"'sha256-{base64.b64encode(digest).decode()}'"


def _manifest() -> dict[str, Asset]:
    return current_app.extensions["assets"]


def asset_url(filename: str) -> str:
    return f"/assets/{_manifest()[filename].digest}/{filename}"


def asset_integrity(filename: str) -> str:
    return _manifest()[filename].integrity


def inline_css() -> Markup:
    # Exactly the file's text: the CSP hash is over these bytes. It is our own file.
    return Markup(_manifest()[INLINE_CSS].data.decode())  # noqa: S704


def _serve(known: Asset, cache: str) -> Response:
    accepted = request.accept_encodings
    if known.brotli is not None and accepted["br"] > 0:
        encoding, body = "br", known.brotli
    elif known.gzipped is not None and accepted["gzip"] > 0:
        encoding, body = "gzip", known.gzipped
    else:
        encoding, body = "", known.data
    response = Response(body, mimetype=known.mimetype)
    if encoding:
        response.headers["Content-Encoding"] = encoding
    response.headers["Vary"] = "Accept-Encoding"
    response.headers["Cache-Control"] = cache
    # Public files: a CRM page may load them with integrity and crossorigin="anonymous".
    response.headers["Access-Control-Allow-Origin"] = "*"
    return response


@bp.get("/assets/<digest>/<path:filename>")
def asset(digest: str, filename: str) -> ResponseReturnValue:
    known = _manifest().get(filename)
    if known is None or known.digest != digest:
        abort(404)  # an old or made-up version: never serve other content under a hashed URL
    return _serve(known, IMMUTABLE)


def _revalidated(known: Asset, cache: str) -> ResponseReturnValue:
    response = _serve(known, cache)
    response.set_etag(f"{known.digest}-{response.headers.get('Content-Encoding', 'identity')}")
    return response.make_conditional(request)


@bp.get("/embed.js")
def embed() -> ResponseReturnValue:
    """Release 1.0.0 of the host page's helper, at the URL the first guide named: frozen."""
    return _revalidated(_manifest()[EMBED_LEGACY], EMBED_CACHE)


@bp.get("/embed/<name>")
def embed_release(name: str) -> ResponseReturnValue:
    """A release (`1.1.0.js`), the newest of a major version (`v1.js`), or the list."""
    releases = embed_releases(_manifest())
    if name == "releases.json":
        listed = [
            {"version": v, "url": f"/embed/{v}.js", "integrity": asset.integrity}
            for v, asset in releases.items()
        ]
        response = jsonify(releases=listed, latest=listed[-1]["version"] if listed else None)
        response.headers["Cache-Control"] = RELEASES_CACHE
        response.headers["Access-Control-Allow-Origin"] = "*"
        return response
    major = re.fullmatch(r"v([0-9]{1,3})\.js", name)
    if major:
        newest = [v for v in releases if v.split(".")[0] == major.group(1)]
        if not newest:
            abort(404)
        return _revalidated(releases[newest[-1]], EMBED_CACHE)
    known = releases.get(name.removesuffix(".js")) if name.endswith(".js") else None
    if known is None:
        abort(404)
    return _serve(known, IMMUTABLE)
