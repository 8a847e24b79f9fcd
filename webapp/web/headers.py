"""Response headers every answer carries: framing, a strict script policy, no leaks."""

from __future__ import annotations

from functools import partial

from flask import Flask, Response, current_app


def content_security_policy(
    frame_ancestors: str,
    frame_src: str = "'none'",
    style_hashes: str = "",
    script_src: str = "'self'",
) -> str:
    return "; ".join(
        (
            "default-src 'none'",
            f"script-src {script_src}",
            f"style-src 'self' {style_hashes}".strip(),
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-src {frame_src}",
            f"frame-ancestors {frame_ancestors}",
        )
    )


def secure_headers(response: Response, *, csp: str) -> Response:
    """The headers every answer carries; `csp`, the app's policy, bound when the hook is
    registered (init_app) rather than looked up through Flask's proxy on every answer."""
    headers = response.headers
    # One pass over the few headers there are, then appends: werkzeug's lookups each scan
    # the list, and a missing name costs an exception (this runs on every response).
    present = {name.lower() for name, _ in headers}
    # A view may set its own policy (the demo CRM page frames the widget).
    if "content-security-policy" not in present:
        headers.add("Content-Security-Policy", csp)
    # The launch query (ucid, agent, signature) must not leak to anything the page loads.
    for name, value in (("Referrer-Policy", "no-referrer"), ("X-Content-Type-Options", "nosniff")):
        if name.lower() in present:
            headers[name] = value
        else:
            headers.add(name, value)
    if "cache-control" not in present:
        headers.add("Cache-Control", "no-store")
    return response


def policy_allowing_style(source: str) -> str:
    """The app's policy with one more inline stylesheet allowed (a page's own, by its hash)."""
    settings = current_app.config["WIDGET"]
    styles = f"{current_app.extensions['csp_style_hashes']} {source}"
    return content_security_policy(settings.frame_ancestors_header, style_hashes=styles)


def init_app(app: Flask, style_hashes: str) -> None:
    """Build the policy once; every response then only copies it."""
    settings = app.config["WIDGET"]
    app.extensions["csp_style_hashes"] = style_hashes
    app.extensions["csp"] = content_security_policy(
        settings.frame_ancestors_header, style_hashes=style_hashes
    )
    app.after_request(partial(secure_headers, csp=app.extensions["csp"]))
