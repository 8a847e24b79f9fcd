"""Response headers every answer carries: framing, a strict script policy, no leaks."""

from __future__ import annotations

from flask import Flask, Response, current_app


def content_security_policy(frame_ancestors: str, frame_src: str = "'none'") -> str:
    return "; ".join(
        (
            "default-src 'none'",
            "script-src 'self'",
            "style-src 'self'",
            "img-src 'self' data:",
            "connect-src 'self'",
            "form-action 'self'",
            "base-uri 'none'",
            f"frame-src {frame_src}",
            f"frame-ancestors {frame_ancestors}",
        )
    )


def secure_headers(response: Response) -> Response:
    settings = current_app.config["WIDGET"]
    headers = response.headers
    # A view may set its own policy (the demo CRM page frames the widget).
    headers.setdefault(
        "Content-Security-Policy", content_security_policy(settings.frame_ancestors_header)
    )
    # The launch query (ucid, agent, signature) must not leak to anything the page loads.
    headers["Referrer-Policy"] = "no-referrer"
    headers["X-Content-Type-Options"] = "nosniff"
    headers.setdefault("Cache-Control", "no-store")
    return response


def init_app(app: Flask) -> None:
    app.after_request(secure_headers)
