"""CloudAgent's Subscribe API as plain functions: (simulator, headers, body) -> an answer.

Worded like the documented answers, plain text except the list's JSON (docs/cloudagent.md,
"CloudAgent's events"). What the documentation leaves open is assumed and said so: the HTTP
status codes (200 for answers, 401 for "Unauthorized", 400 for a malformed body), the
unsubscribe path, and a subscribe replacing the account's earlier one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from .state import Account, Simulator

SUBSCRIBE_PATH = "/events/subscribe"
LIST_PATH = "/events/subscriptions/list"
UNSUBSCRIBE_PATH = "/events/un-subscribe"  # assumed: the documentation's slug is ambiguous

Answer = tuple[int, str, str]  # HTTP status, Content-Type, body
_TEXT = "text/plain; charset=utf-8"
UNAUTHORIZED: Answer = (401, _TEXT, "Unauthorized")


def _account(sim: Simulator, headers: Mapping[str, str]) -> Account | None:
    account = sim.account(headers.get("username", ""))
    if account is None or headers.get("api_key") != account.api_key:
        return None
    return account


def _url(value: object) -> str | None:
    """A registered URL: an http(s) string, or "" / absent for none; None when malformed."""
    if value is None or value == "":
        return ""
    if isinstance(value, str) and value.startswith(("http://", "https://")) and len(value) < 2048:
        return value
    return None


def subscribe(sim: Simulator, headers: Mapping[str, str], body: object) -> Answer:
    sim.events.count("subscribe")
    account = _account(sim, headers)
    if account is None:
        return UNAUTHORIZED
    if not isinstance(body, dict):
        return 400, _TEXT, "Invalid request body"
    call_url, agent_url = _url(body.get("callEventsURL")), _url(body.get("agentEventsURL"))
    if call_url is None or agent_url is None or not (call_url or agent_url):
        return 400, _TEXT, "Invalid callEventsURL or agentEventsURL"
    sim.events.subscribe(account.username, call_url, agent_url)
    return 200, _TEXT, f"Subscription added successfully for User: {account.username}"


def list_subscriptions(sim: Simulator, headers: Mapping[str, str], body: object) -> Answer:
    sim.events.count("list")
    account = _account(sim, headers)
    if account is None:
        return UNAUTHORIZED
    found = sim.events.subscription(account.username)
    if found is None:
        # The documented spelling.
        return 200, _TEXT, f"Subscription doesnt exists for User: {account.username}"
    return 200, "application/json", json.dumps(found.to_json())


def unsubscribe(sim: Simulator, headers: Mapping[str, str], body: object) -> Answer:
    sim.events.count("unsubscribe")
    account = _account(sim, headers)
    if account is None:
        return UNAUTHORIZED
    kind = body.get("eventType") if isinstance(body, dict) else None
    if kind not in ("call", "agent", "both"):
        return 400, _TEXT, "Invalid eventType"
    if not sim.events.unsubscribe(account.username, kind):
        return 200, _TEXT, f"Subscription doesn't exists for User: {account.username}"
    return 200, _TEXT, f"Unsubscribed to {kind} events successfully for User: {account.username}"
