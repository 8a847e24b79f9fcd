"""CloudAgent's outgoing events, as the simulator sends them.

Two channels, both described in docs/cloudagent.md ("CloudAgent's events"):

- the Subscribe API's call events: JSON POSTed to the account's callEventsURL as a call
  changes (Calling and Answered when it starts, Disconnect when it is hung up);
- the account's Callback URL: a call summary once the call's disposition is final (applied
  at hang-up, saved during wrap-up, or "Wrap up time exceeded :<seconds>" when wrap-up ran
  out with nothing), as a form field `data` holding JSON (what real receivers see) or, when
  told, as a JSON body.

Agent events (eventType "Agent") are registered but never sent: their fields are not
documented. Times are CloudAgent's `YYYY-MM-DD HH:MM:SS`, in Asia/Kolkata, with no offset.
"""

from __future__ import annotations

import threading
import zlib
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal
from zoneinfo import ZoneInfo

from .delivery import Deliverer, Encoding

if TYPE_CHECKING:
    from .state import Account, Call

EventKind = Literal["call", "agent", "both"]
CallAction = Literal["Calling", "Answered", "Disconnect"]

ZONE = ZoneInfo("Asia/Kolkata")
SKILL = "General"
CALL_TYPE = "Inbound"  # the demo lines are inbound
WRAPUP_EXCEEDED = "Wrap up time exceeded :{seconds}"  # observed; the seconds are wrap-up's


def cloudagent_time(epoch: float) -> str:
    return datetime.fromtimestamp(epoch, ZONE).strftime("%Y-%m-%d %H:%M:%S")


def _duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


def agent_number(agent_id: str) -> str:
    """A stable made-up phone number for an agent."""
    return f"9876{zlib.crc32(agent_id.encode()) % 10**6:06d}"


@dataclass
class Subscription:
    call_events_url: str = ""
    agent_events_url: str = ""

    def to_json(self) -> dict[str, str]:
        # The documented list answer's key order.
        return {"agentEventsURL": self.agent_events_url, "callEventsURL": self.call_events_url}


def call_event(account: Account, call: Call, action: CallAction, at: float, now: float) -> dict:
    """One call event, with the documented fields (eventTime: when it is sent)."""
    return {
        "eventType": "Call",
        "eventTime": cloudagent_time(now),
        "username": account.username,
        "action": action,
        "call_type": CALL_TYPE,
        "ucid": call.ucid,
        "monitor_ucid": call.monitor_ucid,
        "agent_id": call.agent_id,
        "skill": SKILL,
        "caller_id": call.caller_id,
        "did": call.did,
        "agent_number": agent_number(call.agent_id),
        "event_time": cloudagent_time(at),
    }


def call_summary(account: Account, call: Call, disposition: str, comments: str) -> dict:
    """The Callback URL's summary of a finished call: the fields real payloads carry, with
    their observed spellings (`Did`, not the documented `dId`)."""
    end = call.hung_up_at if call.hung_up_at is not None else call.started_at
    return {
        "monitorUCID": call.monitor_ucid,
        "UCID": call.ucid,
        "Did": call.did,
        "CampaignName": f"Inbound_{call.did}",
        "CallerID": call.caller_id,
        "Skill": SKILL,
        "StartTime": cloudagent_time(call.started_at),
        "EndTime": cloudagent_time(end),
        "CallDuration": _duration(end - call.started_at),
        "Type": "inbound",
        "AgentID": call.agent_id,
        "AgentName": call.agent_id,
        "AgentPhoneNumber": agent_number(call.agent_id),
        "Disposition": disposition,
        "HangupBy": "UserHangup",
        "Status": "Answered",
        "Comments": comments,
        "DialStatus": "answered",
        "AgentStatus": "answered",
        "CustomerStatus": "answered",
        "Apikey": account.api_key,  # CloudAgent sends the account's key with every summary
        "UserName": account.username,
    }


class EventHub:
    """Each account's subscription and Callback URL, and the deliveries to them."""

    def __init__(self, clock: Callable[[], float], on_idle: Callable[[], None]) -> None:
        self.clock = clock
        self.deliverer = Deliverer(on_idle)
        self._lock = threading.Lock()
        self._subscriptions: dict[str, Subscription] = {}
        self._callbacks: dict[str, tuple[str, Encoding]] = {}
        self._requests: Counter[str] = Counter()  # Subscribe API requests, by operation

    def reset(self) -> None:
        with self._lock:
            self._subscriptions.clear()
            self._callbacks.clear()
            self._requests.clear()
        self.deliverer.clear()

    def count(self, operation: str) -> None:
        with self._lock:
            self._requests[operation] += 1

    # --- the Subscribe API -------------------------------------------------------------

    def subscribe(self, username: str, call_events_url: str, agent_events_url: str) -> None:
        """Replace the account's subscription (assumed: one per account, the last wins)."""
        with self._lock:
            self._subscriptions[username] = Subscription(call_events_url, agent_events_url)

    def subscription(self, username: str) -> Subscription | None:
        with self._lock:
            found = self._subscriptions.get(username)
            return Subscription(found.call_events_url, found.agent_events_url) if found else None

    def unsubscribe(self, username: str, kind: EventKind) -> bool:
        """Drop one kind or both; False when the account had no subscription."""
        with self._lock:
            found = self._subscriptions.get(username)
            if found is None:
                return False
            if kind in ("call", "both"):
                found.call_events_url = ""
            if kind in ("agent", "both"):
                found.agent_events_url = ""
            if not found.call_events_url and not found.agent_events_url:
                del self._subscriptions[username]
            return True

    # --- the Callback URL --------------------------------------------------------------

    def set_callback_url(self, username: str, url: str, encoding: Encoding = "form") -> None:
        with self._lock:
            if url:
                self._callbacks[username] = (url, encoding)
            else:
                self._callbacks.pop(username, None)
        if url:
            self.deliverer.start()  # its idle sweep notices wrap-ups that run out

    def callback_url(self, username: str) -> tuple[str, Encoding]:
        with self._lock:
            return self._callbacks.get(username, ("", "form"))

    # --- what calls do ----------------------------------------------------------------

    def call_changed(self, account: Account, call: Call, *actions: CallAction) -> None:
        with self._lock:
            found = self._subscriptions.get(account.username)
            url = found.call_events_url if found else ""
        if not url:
            return
        now = self.clock()
        at = call.hung_up_at if "Disconnect" in actions and call.hung_up_at else call.started_at
        for action in actions:
            self.deliverer.send("call", url, call_event(account, call, action, at, now))

    def call_finished(self, account: Account, call: Call, disposition: str, comments: str) -> None:
        url, encoding = self.callback_url(account.username)
        if url:
            summary = call_summary(account, call, disposition, comments)
            self.deliverer.send("summary", url, summary, encoding)

    def stats(self) -> dict[str, Any]:
        with self._lock:
            requests = {op: self._requests[op] for op in ("subscribe", "list", "unsubscribe")}
        return {"subscription_requests": requests, "deliveries": self.deliverer.stats()}
