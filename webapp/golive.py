"""`flask --app wsgi cloudagent check --did D`: the go-live check.

Tries the configured CloudAgent account the way a panel will, and saves nothing: reaches the
host, signs in (the stored token if fresh; a mint only if needed, within the hourly budget),
fetches D's disposition list (action=get) and prints what it understood, or what is wrong in
plain words for the usual first-day mistakes. Exit status 0 only when a panel would work.
The API key and tokens are never printed.
"""

from __future__ import annotations

import socket
import sys
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime
from urllib.parse import urlsplit

import click
from flask import current_app
from flask.cli import with_appcontext

from .cloudagent import (
    CloudAgentClient,
    DispositionList,
    MintBudgetExhausted,
    MintFailed,
    StoreUnavailable,
    TokenConflict,
)
from .config import Settings, redact_url

HOSTS = (
    "Ozonetel's hosts are https://in1-ccaas-api.ozonetel.com (India) and "
    "https://api.ccaas.ozonetel.com (international); partners have their own"
)
SHOWN_NAMES = 60  # names listed in full; the rest counted
Say = Callable[[str], None]


class Failed(Exception):
    """The check stops here: str() is the diagnosis."""


def safe(text: str, limit: int = 300) -> str:
    """Upstream text made safe for a terminal: controls and invisible characters escaped,
    clipped to `limit` characters."""
    shown = "".join(
        f"\\u{ord(c):04x}" if unicodedata.category(c) in ("Cc", "Cf", "Zl", "Zp") else c
        for c in text[: limit + 1]
    )
    return shown[:limit] + ("…" if len(text) > limit else "")


def _when(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M UTC")


# -- the steps ----------------------------------------------------------------------------------


def reach(client: CloudAgentClient, timeout: float, say: Say) -> None:
    """The host's name resolves and its port takes a connection (or a proxy is configured)."""
    parts = urlsplit(client.base_url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    proxy = client.session.proxies.get(parts.scheme) or client.session.proxies.get("all")
    if proxy:
        say(f"  through the proxy {redact_url(proxy)} (from the environment's proxy variables)")
        return
    try:
        addresses = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError):
        raise Failed(
            f"the host name {host!r} does not resolve (DNS): check WIDGET_CLOUDAGENT_URL. {HOSTS}."
        ) from None
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except ConnectionRefusedError:
        raise Failed(
            f"{host}:{port} refused the connection: nothing listens there. Check "
            f"WIDGET_CLOUDAGENT_URL (scheme, host and port). {HOSTS}."
        ) from None
    except OSError as error:
        raise Failed(
            f"{host}:{port} did not take a connection within {timeout:g} s ({error}): a "
            "firewall may drop it, an outbound proxy may be required (HTTPS_PROXY), or the "
            "host is wrong; check WIDGET_CLOUDAGENT_URL."
        ) from None
    say(f"  reached {host}:{port} ({addresses[0][4][0]})")


def _mint_failure(failure: MintFailed) -> str:
    detail, status = failure.detail, failure.http_status
    where = "Generate Token (/ca_apis/CAToken/generateToken)"
    if detail.lower() in ("invalid username or apikey", "username is null"):
        return (
            f"CloudAgent refused the user name or the API key ({detail!r}): check "
            "WIDGET_CLOUDAGENT_USERNAME and WIDGET_CLOUDAGENT_API_KEY (the account's API key, "
            "from CloudAgent's admin settings)."
        )
    if status == 407:
        return f"a proxy answered {where} with 407 Proxy Authentication Required: {_PROXY}"
    if status == 404:
        return f"{where} answered 404: this is not CloudAgent's API host. {HOSTS}."
    if detail.startswith("an HTML page"):
        return f"{where} was answered with {safe(detail)} (HTTP {status}): {_PROXY}"
    if detail in ("unreachable", "lost_answer"):
        return f"{where} could not be reached or did not answer ({detail})."
    if "limit" in detail.lower():
        return (
            f"CloudAgent refused to mint a token ({safe(detail)!r}): the account's 10 tokens "
            "an hour are used up, maybe by another system signing in with the same key."
        )
    return f"{where} gave no token (HTTP {status}, {safe(detail)!r})."


_PROXY = (
    "a proxy, captive portal or wrong host is in the way. Check WIDGET_CLOUDAGENT_URL, and "
    "HTTPS_PROXY/NO_PROXY (with a user and password in the proxy URL if it asks for one)."
)


def sign_in(client: CloudAgentClient, say: Say) -> None:
    if client.auth == "apikey":
        say("  auth: apikey (the account's API key on every request: accounts on BASIC_AUTH)")
        return
    say("  auth: token (Bearer tokens minted with the API key: accounts on TOKEN_AUTH)")
    store = client.token_store
    assert store is not None
    try:
        before = store.current(client.account)
        token = client.sign_in()
    except MintFailed as failure:
        raise Failed(_mint_failure(failure)) from None
    except MintBudgetExhausted as held:
        raise Failed(
            "no token could be minted now: this service's mint attempts for the hour are used "
            f"up, or it holds back after a failed attempt ({held}). Nothing was sent; try "
            "again in a few minutes."
        ) from None
    except TokenConflict as conflict:
        raise Failed(
            "another system keeps minting tokens for this account, so this service stopped "
            f"minting until {_when(conflict.until)}: let only this service sign in with the "
            "account's API key (docs/operations.md, Sign-in conflicts)."
        ) from None
    except StoreUnavailable as down:
        raise Failed(f"the shared token store (Redis) does not answer: {down}") from None
    assert token is not None
    how = "reused the stored token" if before and before.value == token.value else "minted a token"
    left = store.mint_budget_left(client.account)
    say(f"  signed in: {how}, valid until {_when(token.expires_at)}; {left} mint(s) left this hour")
    if how == "reused the stored token":
        # A mint would log out the panels using this token: the key is left for the next one.
        say(
            "  note: the API key itself was not tried (the stored token still works); it is "
            "at the next mint, shortly before this token expires"
        )


def _list_failure(listing: DispositionList, auth: str) -> str:
    error = listing.error
    assert error is not None
    status, text, raw = error.http_status, error.upstream_text or "", error.raw or ""
    lowered = text.lower().rstrip(".")
    if error.reason == "token_conflict":
        return "another system keeps signing in to this account (docs/operations.md)."
    if auth == "apikey" and lowered == "token should not be null or empty":
        return (
            "CloudAgent wants a token: the account's API Authentication is TOKEN_AUTH. Set "
            "WIDGET_CLOUDAGENT_AUTH=token (or switch the account to BASIC_AUTH)."
        )
    if auth == "token" and lowered == "api key should not be null or empty":
        return (
            "CloudAgent wants the API key on each request: the account's API Authentication "
            "is BASIC_AUTH. Set WIDGET_CLOUDAGENT_AUTH=apikey (or switch the account to "
            "TOKEN_AUTH)."
        )
    if lowered in ("invalid user details", "username should not be null or empty"):
        return f"CloudAgent refused the account ({text!r}): check WIDGET_CLOUDAGENT_USERNAME" + (
            " and WIDGET_CLOUDAGENT_API_KEY." if auth == "apikey" else "."
        )
    if error.reason == "token":
        return f"CloudAgent refused a freshly minted token ({text!r})."
    if status == 407:
        return f"a proxy answered 407 Proxy Authentication Required: {_PROXY}"
    if status == 404:
        return f"the Disposition API answered 404: this is not CloudAgent's API host. {HOSTS}."
    if raw.lstrip().startswith("<"):
        return f"an HTML page answered (HTTP {status}): {_PROXY} It said: {safe(raw, 200)}"
    if error.reason in ("unreachable", "lost_answer"):
        return f"CloudAgent could not be reached or did not answer in time ({error.reason})."
    if error.reason == "bad_response":
        return (
            f"the disposition list could not be read (HTTP {status}). CloudAgent answered: "
            f"{safe(raw) if raw.strip() else '(an empty body)'}"
        )
    return f"CloudAgent refused the list ({error.reason}: {safe(text or raw)!r})."


def fetch_list(client: CloudAgentClient, agent: str, did: str, ucid: str, say: Say) -> int:
    listing = client.fetch_dispositions(agent, did, ucid)
    if not listing.ok:
        raise Failed(_list_failure(listing, client.auth))
    names = listing.names
    say(f"  the list of DID {did}: {len(names)} disposition(s)")
    for name in names[:SHOWN_NAMES]:
        say(f"    {safe(name, 120)}")
    if len(names) > SHOWN_NAMES:
        say(f"    … and {len(names) - SHOWN_NAMES} more")
    return len(names)


def run(settings: Settings, client: CloudAgentClient, did: str, agent: str, ucid: str,
        say: Say) -> bool:  # fmt: skip
    """The check, step by step through `say`; True when a panel would work."""
    say(f"CloudAgent {client.base_url} as {client.username!r}")
    steps = (
        ("reach the host", lambda: reach(client, settings.connect_timeout, say)),
        ("sign in", lambda: sign_in(client, say)),
        ("fetch the list", lambda: fetch_list(client, agent, did, ucid, say)),
    )
    for what, step in steps:
        try:
            step()
        except Failed as failure:
            say(f"FAILED to {what}: {failure}")
            return False
    say("OK: a panel on this DID would load its list and could save.")
    return True


@click.group(help="The CloudAgent account this service uses.")
def cloudagent() -> None:
    pass


@cloudagent.command("check", help="Try the account as a panel would, saving nothing.")
@click.option("--did", required=True, help="a DID (line) whose disposition list to fetch")
@click.option("--agent", default="golive-check", help="the agentID sent with action=get")
@click.option("--ucid", default="0", help="the ucid sent with action=get")
@with_appcontext
def check_command(did: str, agent: str, ucid: str) -> None:
    settings: Settings = current_app.config["WIDGET"]
    client: CloudAgentClient = current_app.extensions["cloudagent"]
    ok = run(settings, client, did, agent, ucid, click.echo)
    sys.exit(0 if ok else 1)


# subscribe, subscriptions and unsubscribe join this group from their own module.
from . import subscriptions_cli  # noqa: E402, F401
