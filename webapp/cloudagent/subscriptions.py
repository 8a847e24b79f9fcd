"""Client for CloudAgent's Subscribe API: where CloudAgent posts its real-time call events.

A plain library (no Flask). Three operations, on a host of their own
(https://subscription.ozonetel.com, or https://subscription.ccaas.ozonetel.com in the US),
authenticated with the headers `api_key` and `username`. The answers are plain text, except
the list's JSON, and their HTTP status codes are not documented: each is read by substring,
and its raw text kept for the operator (docs/cloudagent.md, "CloudAgent's events").
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from typing import Literal

import requests
from urllib3.exceptions import NewConnectionError

from .client import make_session

__all__ = [
    "SUBSCRIBE_PATH",
    "SUBSCRIPTIONS_LIST_PATH",
    "UNSUBSCRIBE_PATH",
    "SubscriptionAnswer",
    "SubscriptionsClient",
]

log = logging.getLogger("webapp.cloudagent")

SUBSCRIBE_PATH = "/events/subscribe"  # from the documentation page's name
SUBSCRIPTIONS_LIST_PATH = "/events/subscriptions/list"  # documented
# Assumed: the page's name (post_events-un-subscribe) reads as this or /events/un/subscribe.
UNSUBSCRIBE_PATH = "/events/un-subscribe"
# The most of an answer read: the documented ones are a line or two URLs.
MAX_ANSWER_BYTES = 64 * 1024

Kind = Literal["call", "agent", "both"]
# ok: done (or listed); none: the account has no subscription; unauthorized: the key or user
# name was refused; unreachable: never connected; no_answer: sent, no answer in time (or the
# connection dropped); unexpected: anything else (a redirect, an error page, other words).
Result = Literal["ok", "none", "unauthorized", "unreachable", "no_answer", "unexpected"]


@dataclass(frozen=True)
class SubscriptionAnswer:
    result: Result
    text: str = ""  # the answer as received (at most MAX_ANSWER_BYTES), or the fault
    http_status: int | None = None
    # The list's URLs (empty when not registered); only for a listed subscription.
    urls: dict[str, str] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.result == "ok"


class SubscriptionsClient:
    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        api_key: str,
        session: requests.Session | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._api_key = api_key
        self.session = session or make_session(base_url, pool_size=2)
        self.timeout = (connect_timeout, read_timeout)

    def __repr__(self) -> str:  # never the key
        return f"SubscriptionsClient({self.base_url!r}, username={self.username!r})"

    def subscribe(self, call_events_url: str, agent_events_url: str = "") -> SubscriptionAnswer:
        """Register where call (and agent) events go; an empty URL is not sent."""
        body = {"callEventsURL": call_events_url}
        if agent_events_url:
            body["agentEventsURL"] = agent_events_url
        answer = self._call("POST", SUBSCRIBE_PATH, body)
        if answer.result != "unexpected":
            return answer
        if "subscription added successfully" in answer.text.lower():
            return _with(answer, "ok")
        return answer

    def list(self) -> SubscriptionAnswer:
        """What is registered: `urls` holds callEventsURL and agentEventsURL."""
        answer = self._call("GET", SUBSCRIPTIONS_LIST_PATH, None)
        if answer.result != "unexpected":
            return answer
        if _no_subscription(answer.text):
            return _with(answer, "none")
        try:
            listed = json.loads(answer.text)
        except ValueError:
            return answer
        keys = ("callEventsURL", "agentEventsURL")
        if not isinstance(listed, dict) or not any(k in listed for k in keys):
            return answer
        urls = {k: listed[k] if isinstance(listed.get(k), str) else "" for k in keys}
        return SubscriptionAnswer("ok", answer.text, answer.http_status, urls)

    def unsubscribe(self, kind: Kind = "call") -> SubscriptionAnswer:
        if kind not in ("call", "agent", "both"):
            raise ValueError(f"kind must be 'call', 'agent' or 'both', not {kind!r}")
        answer = self._call("POST", UNSUBSCRIBE_PATH, {"eventType": kind})
        if answer.result != "unexpected":
            return answer
        lowered = answer.text.lower()
        if "unsubscribed" in lowered and "successfully" in lowered:
            return _with(answer, "ok")
        if _no_subscription(answer.text):
            return _with(answer, "none")
        return answer

    def _call(self, method: str, path: str, body: dict[str, str] | None) -> SubscriptionAnswer:
        """The answer read as far as the shared cases go: a fault, a redirect, "Unauthorized";
        anything else comes back "unexpected" with its text, for the operation to read."""
        headers = {"api_key": self._api_key, "username": self.username}
        if body is not None:
            headers["Content-Type"] = "application/json"
        what = f"subscriptions {method} {path}"
        try:
            # Never followed: a redirect would take the API key elsewhere.
            response = self.session.request(
                method,
                self.base_url + path,
                headers=headers,
                data=json.dumps(body) if body is not None else None,
                timeout=self.timeout,
                allow_redirects=False,
                stream=True,
            )
            try:
                text = _text_of(response)
            finally:
                response.close()
        except requests.ConnectTimeout as error:
            log.warning("cloudagent %s: cannot connect: %s", what, error)
            return SubscriptionAnswer("unreachable", f"no connection within {self.timeout[0]:g} s")
        except requests.exceptions.SSLError as error:
            log.warning("cloudagent %s: TLS failed: %s", what, error)
            return SubscriptionAnswer("unreachable", "TLS handshake failed (certificate?)")
        except requests.ConnectionError as error:
            log.warning("cloudagent %s: connection failed: %s", what, error)
            unreachable = _never_connected(error)
            return SubscriptionAnswer("unreachable" if unreachable else "no_answer", _reason(error))
        except requests.Timeout:
            log.warning("cloudagent %s: no answer in time", what)
            return SubscriptionAnswer("no_answer", f"no answer within {self.timeout[1]:g} s")
        except requests.RequestException as error:
            log.warning("cloudagent %s: request failed: %s", what, type(error).__name__)
            return SubscriptionAnswer("unreachable", type(error).__name__)
        status = response.status_code
        if text is None:
            return SubscriptionAnswer("unexpected", "(longer than 64 KiB, not read)", status)
        if "unauthorized" in text.lower() or (status in (401, 403) and not text.strip()):
            return SubscriptionAnswer("unauthorized", text, status)
        return SubscriptionAnswer("unexpected", text, status)


def _with(answer: SubscriptionAnswer, result: Result) -> SubscriptionAnswer:
    return SubscriptionAnswer(result, answer.text, answer.http_status, answer.urls)


def _no_subscription(text: str) -> bool:
    # Documented as both "doesnt exists" and "doesn't exists"; "does not exist" for good measure.
    lowered = text.lower().replace("'", "").replace("does not", "doesnt")
    return "subscription doesnt exist" in lowered


def _text_of(response: requests.Response) -> str | None:
    """The answer's text, or None when it is longer than MAX_ANSWER_BYTES (read no further)."""
    body = bytearray()
    for chunk in response.iter_content(16 * 1024):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            return None
    # requests assumes ISO-8859-1 for text/* without a charset; CloudAgent's texts are UTF-8.
    charset = response.encoding if "charset" in response.headers.get("Content-Type", "") else None
    try:
        return body.decode(charset or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know
        return body.decode("utf-8", errors="replace")


def _never_connected(error: requests.ConnectionError) -> bool:
    # NewConnectionError covers a refused connection and a name that does not resolve.
    reason = getattr(error.args[0], "reason", None) if error.args else None
    return isinstance(reason, NewConnectionError)


def _reason(error: requests.ConnectionError) -> str:
    """A connection failure in a few words (urllib3's full text repeats the URL)."""
    reason = getattr(error.args[0], "reason", None) if error.args else None
    if reason is None:
        return "the connection was lost"
    text = str(reason)
    # "<urllib3.connection.HTTPConnection object at 0x…>: Failed to establish …: [Errno 111] …"
    return text.split(">: ", 1)[-1][:200]
