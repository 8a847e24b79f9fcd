"""Static assets under content-hashed URLs, cached for a year, with integrity hashes.

`asset_url("panel.css")` is `/assets/<hash>/panel.css`: the URL changes whenever the file
does, so browsers may keep it forever, and a repeat panel load fetches only the HTML.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass
from pathlib import Path

from flask import Blueprint, abort, current_app, send_from_directory
from flask.typing import ResponseReturnValue

IMMUTABLE = "public, max-age=31536000, immutable"

bp = Blueprint("assets", __name__)


@dataclass(frozen=True)
class Asset:
    digest: str  # short hex of the content, the URL's version
    integrity: str  # Subresource Integrity value for <script>/<link>


def build_manifest(folder: Path) -> dict[str, Asset]:
    """Hash every file under the static folder once, at start-up."""
    manifest = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        data = path.read_bytes()
        sha384 = base64.b64encode(hashlib.sha384(data).digest()).decode()
        manifest[path.relative_to(folder).as_posix()] = Asset(
            digest=hashlib.sha256(data).hexdigest()[:12], integrity=f"sha384-{sha384}"
        )
    return manifest


def _manifest() -> dict[str, Asset]:
    return current_app.extensions["assets"]


def asset_url(filename: str) -> str:
    return f"/assets/{_manifest()[filename].digest}/{filename}"


def asset_integrity(filename: str) -> str:
    return _manifest()[filename].integrity


@bp.get("/assets/<digest>/<path:filename>")
def asset(digest: str, filename: str) -> ResponseReturnValue:
    known = _manifest().get(filename)
    if known is None or known.digest != digest:
        abort(404)  # an old or made-up version: never serve other content under a hashed URL
    response = send_from_directory(current_app.static_folder, filename, conditional=True)
    response.headers["Cache-Control"] = IMMUTABLE
    return response
