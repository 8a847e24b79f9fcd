"""`flask --app wsgi cloudagent subscribe|subscriptions|unsubscribe`: where CloudAgent posts
its real-time call events (the Subscribe API, docs/cloudagent.md "CloudAgent's events").

`subscribe --public-url https://widget.example.com` registers this service's receiver,
`<public-url>/cloudagent/events/<WIDGET_EVENTS_TOKEN>/call`, as the account's callEventsURL.
No agentEventsURL is sent: the widget has no use for agent events (their fields are not even
documented), and CloudAgent would post every agent's every state change to it.
The token and the API key are never printed: URLs show the token as ****.
Exit status 0 when CloudAgent did what was asked, 1 otherwise, with one line saying why.
"""

from __future__ import annotations

import re
import sys
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import with_appcontext

from .cloudagent import SubscriptionAnswer, SubscriptionsClient, make_session
from .config import Settings
from .golive import cloudagent, safe

EVENTS_PATH = "/cloudagent/events/{token}/{kind}"  # the receivers' paths (issue 20)
MASK = "****"


def receiver_url(public_url: str, token: str, kind: str) -> str:
    return public_url.rstrip("/") + EVENTS_PATH.format(token=token, kind=kind)


def masked(url: str, token: str = "") -> str:
    """`url` with the events token shown as ****: the configured one wherever it appears, and
    any segment in the receivers' place (another service's token is a secret too)."""
    if token:
        url = url.replace(token, MASK)
    return re.sub(r"(/cloudagent/events/)[^/?#]+", rf"\g<1>{MASK}", url)


def _settings() -> Settings:
    return current_app.config["WIDGET"]


def _client(settings: Settings) -> SubscriptionsClient:
    return SubscriptionsClient(
        base_url=settings.events_api,
        username=settings.cloudagent_username,
        api_key=settings.cloudagent_api_key,
        session=make_session(settings.events_api, pool_size=2),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
    )


def _fail(message: str) -> None:
    click.echo(f"FAILED: {message}")
    sys.exit(1)


def _failure(answer: SubscriptionAnswer, settings: Settings) -> str:
    """What went wrong, in plain words, on one line."""
    where = settings.events_api
    status = f"HTTP {answer.http_status}" if answer.http_status is not None else "no answer"
    if answer.result == "unauthorized":
        return (
            f"Unauthorized: CloudAgent refused the user name {settings.cloudagent_username!r} or "
            "the API key; check WIDGET_CLOUDAGENT_USERNAME and WIDGET_CLOUDAGENT_API_KEY."
        )
    if answer.result == "unreachable":
        return (
            f"{where} could not be reached ({safe(answer.text, 200)}); check "
            "WIDGET_CLOUDAGENT_EVENTS_API (https://subscription.ozonetel.com, or "
            "https://subscription.ccaas.ozonetel.com in the US) and any outbound proxy."
        )
    if answer.result == "no_answer":
        return f"{where} did not answer ({safe(answer.text, 200)}); try again."
    if answer.http_status is not None and 300 <= answer.http_status < 400:
        return (
            f"{where} answered with a redirect ({status}), not followed: check "
            "WIDGET_CLOUDAGENT_EVENTS_API."
        )
    said = safe(answer.text, 200) if answer.text.strip() else "(an empty body)"
    return f"unexpected answer from {where} ({status}): {said}"


@cloudagent.command("subscribe", help="Register this service's call-event receiver.")
@click.option(
    "--public-url",
    required=True,
    help="this service's address as CloudAgent reaches it, e.g. https://widget.example.com",
)
@with_appcontext
def subscribe_command(public_url: str) -> None:
    settings = _settings()
    if not settings.events_token:
        _fail(
            "WIDGET_EVENTS_TOKEN is not set: set it to 32+ random characters (letters, digits, "
            "'-', '_') and restart, so the receivers' URLs hold a secret."
        )
    parts = urlsplit(public_url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.query or parts.fragment:
        _fail(f"--public-url: not a base URL like https://widget.example.com: {safe(public_url)!r}")
    if parts.scheme == "http" and not (settings.demo or settings.allow_insecure):
        _fail(
            "--public-url: http:// would carry CloudAgent's events (and the token in their "
            "URL) unencrypted; use https://, or set WIDGET_ALLOW_INSECURE=1."
        )
    token = settings.events_token
    call_url = receiver_url(public_url.strip(), token, "call")
    click.echo(
        f"Registering {masked(call_url, token)} with {settings.events_api} "
        f"as {settings.cloudagent_username!r}"
    )
    client = _client(settings)
    answer = client.subscribe(call_url)
    if not answer.ok:
        _fail(_failure(answer, settings))
    click.echo(f"OK: CloudAgent said: {safe(answer.text, 200)}")
    listed = client.list()
    if listed.ok and listed.urls.get("callEventsURL") == call_url:
        click.echo("  confirmed: the account's callEventsURL is this service's receiver")
    else:
        click.echo("  note: the list does not show it yet; see `flask cloudagent subscriptions`")
    summary = masked(receiver_url(public_url.strip(), token, "summary"), token)
    click.echo(
        f"  next: set the account's Callback URL to {summary} ({MASK} = WIDGET_EVENTS_TOKEN); "
        "docs/operations.md"
    )


@cloudagent.command("subscriptions", help="Show where CloudAgent posts events now.")
@with_appcontext
def subscriptions_command() -> None:
    settings = _settings()
    answer = _client(settings).list()
    if answer.result == "none":
        click.echo(f"No subscription for {settings.cloudagent_username!r}: no events are sent.")
        return
    if not answer.ok:
        _fail(_failure(answer, settings))
    token = settings.events_token
    for label, key in (("call events", "callEventsURL"), ("agent events", "agentEventsURL")):
        url = answer.urls.get(key, "")
        if not url:
            click.echo(f"{label}: (none)")
            continue
        whose = ""
        if "/cloudagent/events/" in url:
            ours = bool(token) and f"/cloudagent/events/{token}/" in url
            whose = " (this service's token)" if ours else " (not this service's token)"
        click.echo(f"{label}: {safe(masked(url, token), 300)}{whose}")


@cloudagent.command("unsubscribe", help="Stop CloudAgent's events of one kind, or both.")
@click.option(
    "--kind",
    type=click.Choice(["call", "agent", "both"]),
    default="call",
    show_default=True,
    help="which events to stop",
)
@with_appcontext
def unsubscribe_command(kind: str) -> None:
    settings = _settings()
    answer = _client(settings).unsubscribe(kind)  # type: ignore[arg-type]
    if answer.result == "none":
        click.echo(f"Nothing to remove: CloudAgent said: {safe(answer.text, 200)}")
        return
    if not answer.ok:
        _fail(_failure(answer, settings))
    click.echo(f"OK: CloudAgent said: {safe(answer.text, 200)}")
