"""What CloudAgent tells the service about calls: their end (a Subscribe API `Disconnect`)
and the disposition it kept (the Callback URL's call summary).

- parse.py: reading and checking what is posted (JSON, a form field holding JSON);
- store.py: the `call_events` table: writes that are idempotent, a call's state, a replay;
- receivers.py: the two routes CloudAgent posts to, behind WIDGET_EVENTS_TOKEN;
- limits.py: per-source rate limits on them;
- cli.py: `flask --app wsgi audit unconfirmed|mismatches`.
"""

from flask import Flask

from ..config import Settings
from .store import CallState, EventStore

__all__ = ["CallState", "EventStore", "init_app"]


def init_app(app: Flask, settings: Settings) -> None:
    """The store (always: the CLI and the panel read it), and with WIDGET_EVENTS_TOKEN set the
    receivers and their limits. After the stores (it writes through the audit log)."""
    from ..audit.cli import audit
    from .cli import mismatches, unconfirmed
    from .limits import make_limiter
    from .receivers import bp

    app.extensions["call_events"] = EventStore(app.extensions["audit"])
    for command in (unconfirmed, mismatches):
        audit.add_command(command)  # `flask audit ...`, beside list, export and prune
    if settings.events_token:
        app.extensions["events_limiter"] = make_limiter(app, settings)
        app.register_blueprint(bp)
