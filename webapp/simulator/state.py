"""In-memory state of the CloudAgent simulator: accounts, tokens, calls, faults and counters.

Pure Python (no Flask) so tests can drive it directly. Every public method takes the one lock,
so the simulator can sit behind a threaded server. Time comes from an injectable clock so tests
can move it instead of sleeping.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Literal

from .events import WRAPUP_EXCEEDED, EventHub
from .faults import Fault, validate

AuthMode = Literal["TOKEN_AUTH", "BASIC_AUTH"]
CallState = Literal["live", "wrapup", "closed"]
TokenStatus = Literal["valid", "invalid", "expired"]
Outcome = Literal["queued", "saved", "already_disposed"]

TOKEN_LIFETIME = 3600  # seconds a token is honoured
MINT_WINDOW = 3600.0  # rolling window of the mint limit
MINT_LIMIT = 10  # successful mints allowed per account per window
REQUEST_KINDS = ("generateToken", "get", "Set", "other")

DEMO_USERNAME = "demo"
DEMO_API_KEY = "demo-api-key"
DEMO_DISPOSITIONS = [
    "Interested",
    "Not interested",
    "Call back later",
    "Wrong number",
    "Sale closed",
]
# A support line with a long list, as large accounts have: the panel offers a search box there.
SUPPORT_DID = "918069100000"
SUPPORT_DISPOSITIONS = [
    "Interested", "Not interested", "Call back later", "Callback requested",
    "Scheduled callback", "Call back - customer busy", "Wrong number", "Sale closed",
    "Issue resolved", "Issue escalated", "Ticket raised", "Ticket updated", "Refund initiated",
    "Refund status shared", "Replacement requested", "Order placed", "Order cancelled",
    "Order status shared", "Delivery delayed", "Delivery address updated", "Payment failed",
    "Payment link sent", "EMI options explained", "Plan upgraded", "Plan downgraded",
    "Plan renewal", "Subscription cancelled", "KYC pending", "KYC completed",
    "Documents requested", "Documents received", "Complaint registered", "Complaint closed",
    "Feedback collected", "Survey completed", "Language barrier", "Customer disconnected",
    "Silent call", "Abusive caller", "Duplicate call", "Transferred to supervisor",
    "Transferred to billing", "Transferred to technical team", "Technical issue - app",
    "Technical issue - website", "Password reset", "Account locked", "Account unlocked",
    "Address change", "Mobile number change", "Email change", "Information shared",
    "Product enquiry", "Price enquiry", "Store locator shared", "Warranty claim",
    "Service visit booked", "Service visit rescheduled", "Do not call", "Voicemail left",
]  # fmt: skip


@dataclass
class Account:
    username: str
    api_key: str
    auth_mode: AuthMode = "TOKEN_AUTH"
    agents: set[str] = field(default_factory=set)
    dids: set[str] = field(default_factory=set)
    dispositions: list[str] = field(default_factory=list)
    pause_reasons: list[str] = field(default_factory=list)
    # A DID with a list of its own (campaigns differ); other DIDs have `dispositions`.
    did_dispositions: dict[str, list[str]] = field(default_factory=dict)

    def dispositions_for(self, did: str) -> list[str]:
        return self.did_dispositions.get(did, self.dispositions)


@dataclass(frozen=True)
class DispositionRequest:
    """One Set request's fields, parsed; a call keeps the one it queued and the one it applied."""

    agent_id: str
    disposition: str
    comments: str = ""
    pause_after_dispose: bool = True
    pause_reason: str = ""
    callback_time: str = ""  # callBackTime as sent, "YYYY-MM-DD HH:MM"


@dataclass(frozen=True)
class SetAttempt:
    """One Set that named this call, kept so tests can assert what the widget sent."""

    request: DispositionRequest  # as parsed (pauseAfterDispose defaulted to True)
    sent: dict[str, str | None]  # the body's fields as text, None where the key was absent
    # Filled in by the simulator when it records the attempt:
    outcome: str = ""  # "queued" / "saved" / "already_disposed", or the rejection text
    at: float = 0.0


@dataclass
class Call:
    ucid: str
    agent_id: str
    did: str
    started_at: float
    clock: Callable[[], float] = field(repr=False, compare=False)
    hung_up_at: float | None = None
    wrapup_until: float | None = None
    applied: DispositionRequest | None = None
    pending: DispositionRequest | None = None
    attempts: list[SetAttempt] = field(default_factory=list)
    # What CloudAgent's events and summaries carry besides the above.
    username: str = ""
    monitor_ucid: str = ""
    caller_id: str = ""
    summarised: bool = False  # its summary went to the Callback URL (or there was none)

    @property
    def state(self) -> CallState:
        # Derived from the clock rather than stored, so wrap-up ends without a timer thread.
        if self.wrapup_until is None:
            return "live"
        return "wrapup" if self.clock() < self.wrapup_until else "closed"

    @property
    def disposition(self) -> str | None:
        return self.applied.disposition if self.applied else None

    @property
    def queued(self) -> str | None:
        return self.pending.disposition if self.pending else None

    @property
    def disposed(self) -> bool:
        return self.applied is not None


@dataclass
class _Token:
    value: str
    exp: int
    expired: bool = False  # forced by expire_token()


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _b64url_json(payload: dict) -> str:
    return _b64url(json.dumps(payload, separators=(",", ":")).encode())


class Simulator:
    def __init__(
        self,
        *,
        clock: Callable[[], float] = time.time,
        wrapup_seconds: float = 30.0,
        latency: float = 0.0,
        seed: bool = True,
    ) -> None:
        self.clock = clock
        self.wrapup_seconds = wrapup_seconds
        self.latency = latency  # slept by the HTTP handlers, outside the lock
        self.lock = threading.Lock()
        self.accounts: dict[str, Account] = {}
        # Subscriptions, the Callback URL and the deliveries; its worker also sweeps for
        # wrap-ups that ran out (the call state is derived from the clock, with no timer).
        self.events = EventHub(lambda: self.clock(), self.sweep)
        self._clear_runtime()
        if seed:
            self.seed_demo()

    def _clear_runtime(self) -> None:
        self.calls: dict[str, Call] = {}
        self._current: dict[str, _Token] = {}  # username -> the one valid token
        self._issued: dict[str, str] = {}  # every token ever minted -> username
        self._mint_log: dict[str, list[float]] = {}
        self._mint_attempts: Counter[str] = Counter()
        self._requests: Counter[str] = Counter({kind: 0 for kind in REQUEST_KINDS})
        self._jti = 0
        self._faults: list[Fault] = []  # first added first
        self._faults_served: Counter[str] = Counter()
        self._fault_id = 0
        self._unfinished: set[str] = set()  # ucids in wrap-up with no disposition yet

    # --- configuration -------------------------------------------------------------------

    def seed_demo(self) -> Account:
        return self.add_account(
            DEMO_USERNAME,
            DEMO_API_KEY,
            agents={"agent1", "agent2", "agent3"},
            dids={"914071327663", "918069000000", SUPPORT_DID},
            dispositions=DEMO_DISPOSITIONS,
            pause_reasons=["Break", "Lunch", "Training", "Meeting", "Bio break"],
            did_dispositions={SUPPORT_DID: SUPPORT_DISPOSITIONS},
        )

    def add_account(
        self,
        username: str,
        api_key: str,
        auth_mode: AuthMode = "TOKEN_AUTH",
        *,
        agents: set[str] | None = None,
        dids: set[str] | None = None,
        dispositions: list[str] | None = None,
        pause_reasons: list[str] | None = None,
        did_dispositions: dict[str, list[str]] | None = None,
    ) -> Account:
        account = Account(
            username,
            api_key,
            auth_mode,
            set(agents or ()),
            set(dids or ()),
            list(dispositions or ()),
            list(pause_reasons or ()),
            {did: list(names) for did, names in (did_dispositions or {}).items()},
        )
        with self.lock:
            self.accounts[username] = account
        return account

    def set_latency(self, seconds: float) -> None:
        if seconds < 0:
            raise ValueError("latency must be >= 0")
        self.latency = float(seconds)

    def reset(self) -> None:
        """Forget tokens, calls, faults and counters, subscriptions and Callback URLs (so no
        test's receiver hears another's calls); accounts and settings stay as configured."""
        with self.lock:
            self._clear_runtime()
        self.events.reset()

    def close(self) -> None:
        """Stop the delivery worker (what is still queued is not sent)."""
        self.events.deliverer.stop()

    # --- faults (see faults.py) -----------------------------------------------------------

    def add_fault(self, action: str, kind: str, *, count: int = 1, delay: float = 0.0) -> Fault:
        """Spoil the next `count` requests of `action` (-1: until cleared); ValueError if bad."""
        count, delay = validate(action, kind, count, delay)
        with self.lock:
            self._fault_id += 1
            fault = Fault(self._fault_id, action, kind, count, delay, remaining=count)
            self._faults.append(fault)
            return fault

    def clear_faults(self) -> None:
        with self.lock:
            self._faults.clear()

    def faults(self) -> list[Fault]:
        """The faults still waiting, first to be served first (`remaining` as of now)."""
        with self.lock:
            return list(self._faults)

    def take_fault(self, action: str) -> Fault | None:
        """The first waiting fault matching a request of `action`, consumed once; None if none."""
        with self.lock:
            for index, fault in enumerate(self._faults):
                if not fault.matches(action):
                    continue
                if fault.remaining == 1:
                    del self._faults[index]
                elif fault.remaining > 1:
                    self._faults[index] = replace(fault, remaining=fault.remaining - 1)
                self._faults_served[fault.kind] += 1
                return fault
            return None

    # --- lookups used by the API layer ---------------------------------------------------

    def account(self, username: str) -> Account | None:
        with self.lock:
            return self.accounts.get(username)

    def get_call(self, ucid: str) -> Call | None:
        with self.lock:
            return self.calls.get(ucid)

    def list_calls(self) -> list[Call]:
        with self.lock:
            return list(self.calls.values())

    def count_request(self, kind: str, username: str | None = None) -> None:
        with self.lock:
            self._requests[kind if kind in REQUEST_KINDS else "other"] += 1
            if kind == "generateToken" and username:
                self._mint_attempts[username] += 1

    # --- tokens ----------------------------------------------------------------------------

    def mint_token(self, username: str) -> str | None:
        """Mint a token for a known account; None when the rolling-hour limit is reached."""
        with self.lock:
            now = self.clock()
            recent = [t for t in self._mint_log.get(username, []) if now - t < MINT_WINDOW]
            if len(recent) >= MINT_LIMIT:
                return None
            return self._mint(username, now)

    def _mint(self, username: str, now: float) -> str:
        # Caller holds the lock. The new token supersedes the account's previous one.
        self._jti += 1
        iat = int(now)
        claims = {"sub": username, "iat": iat, "exp": int(now + TOKEN_LIFETIME), "jti": self._jti}
        value = ".".join(
            (
                _b64url_json({"alg": "HS256", "typ": "JWT"}),
                _b64url_json(claims),
                _b64url(secrets.token_bytes(32)),
            )
        )
        self._current[username] = _Token(value, claims["exp"])
        self._issued[value] = username
        self._mint_log.setdefault(username, []).append(now)
        return value

    def check_token(self, token: str) -> tuple[TokenStatus, Account | None]:
        with self.lock:
            username = self._issued.get(token)
            current = self._current.get(username) if username else None
            if current is None or current.value != token:
                return "invalid", None
            if current.expired or self.clock() >= current.exp:
                return "expired", None
            return "valid", self.accounts.get(username)

    def expire_token(self, username: str) -> None:
        with self.lock:
            self._require_account(username)
            if username not in self._current:
                raise KeyError(f"no token issued for {username}")
            self._current[username].expired = True

    def rotate_token(self, username: str) -> str:
        """Another party mints for this account: our token goes invalid. Ignores the limit."""
        with self.lock:
            self._require_account(username)
            return self._mint(username, self.clock())

    def _require_account(self, username: str) -> Account:
        if username not in self.accounts:
            raise KeyError(f"unknown username {username}")
        return self.accounts[username]

    # --- calls -----------------------------------------------------------------------------

    def start_call(
        self, agent_id: str, did: str, ucid: str | None = None, caller_id: str | None = None
    ) -> Call:
        with self.lock:
            owner = next((a for a in self.accounts.values() if agent_id in a.agents), None)
            if owner is None:
                raise ValueError(f"unknown agent {agent_id}")
            if did not in owner.dids:
                raise ValueError(f"did {did} is not a DID of account {owner.username}")
            if ucid is None:
                ucid = self._new_ucid()
            elif ucid in self.calls:
                raise ValueError(f"ucid {ucid} already exists")
            call = Call(ucid, agent_id, did, self.clock(), self.clock, username=owner.username)
            call.monitor_ucid = self._new_ucid()
            call.caller_id = caller_id or f"9198{secrets.randbelow(10**8):08d}"
            self.calls[ucid] = call
            self.events.call_changed(owner, call, "Calling", "Answered")
            return call

    def _new_ucid(self) -> str:
        while True:
            ucid = str(secrets.randbelow(9 * 10**15) + 10**15)  # 16 digits, no leading zero
            if ucid not in self.calls:
                return ucid

    def hang_up(self, ucid: str) -> Call:
        with self.lock:
            call = self._require_call(ucid)
            self._hang_up(call)
            return call

    def _hang_up(self, call: Call) -> None:
        if call.state != "live":
            return  # idempotent: a second hang-up changes nothing
        now = self.clock()
        call.hung_up_at = now
        call.wrapup_until = now + self.wrapup_seconds
        self.events.call_changed(self.accounts[call.username], call, "Disconnect")
        if call.pending is not None:
            # CloudAgent applies a queued disposition the moment the call disconnects.
            call.applied, call.pending = call.pending, None
            self._finished(call)
        else:
            self._unfinished.add(call.ucid)

    def expire_wrapup(self, ucid: str) -> Call:
        with self.lock:
            call = self._require_call(ucid)
            self._hang_up(call)
            call.wrapup_until = min(call.wrapup_until or 0.0, self.clock())
            self._sweep()
            return call

    def sweep(self) -> None:
        """Send the summary of each call whose wrap-up has run out with no disposition."""
        with self.lock:
            self._sweep()

    def _sweep(self) -> None:
        for ucid in [u for u in self._unfinished if self.calls[u].state == "closed"]:
            self._finished(self.calls[ucid])

    def _finished(self, call: Call) -> None:
        """The call's disposition is final: its summary goes to the Callback URL, once."""
        self._unfinished.discard(call.ucid)
        if call.summarised:
            return
        call.summarised = True
        if call.applied is not None:
            disposition, comments = call.applied.disposition, call.applied.comments
        else:
            disposition, comments = WRAPUP_EXCEEDED.format(seconds=int(self.wrapup_seconds)), ""
        self.events.call_finished(self.accounts[call.username], call, disposition, comments)

    def _require_call(self, ucid: str) -> Call:
        if ucid not in self.calls:
            raise KeyError(f"unknown ucid {ucid}")
        return self.calls[ucid]

    def submit_disposition(self, call: Call, attempt: SetAttempt) -> Outcome:
        """Queue or apply a validated Set, atomically, according to the call's state."""
        with self.lock:
            state, request = call.state, attempt.request
            if state == "live":
                call.pending = request  # a later set while live replaces the queued one
                outcome: Outcome = "queued"
            elif state == "wrapup" and not call.disposed:
                call.applied = request
                outcome = "saved"
                self._finished(call)
            else:
                outcome = "already_disposed"
            call.attempts.append(replace(attempt, at=self.clock(), outcome=outcome))
            return outcome

    def record_rejected(self, call: Call, attempt: SetAttempt, reason: str) -> None:
        with self.lock:
            call.attempts.append(replace(attempt, at=self.clock(), outcome=reason))

    # --- reporting -------------------------------------------------------------------------

    def mint_times(self, username: str) -> list[float]:
        with self.lock:
            return list(self._mint_log.get(username, []))

    def stats(self) -> dict:
        with self.lock:
            states = Counter(call.state for call in self.calls.values())
            return {
                "requests": dict(self._requests),
                "mints": {user: len(times) for user, times in self._mint_log.items()},
                "mint_attempts": dict(self._mint_attempts),
                "calls": {state: states.get(state, 0) for state in ("live", "wrapup", "closed")},
                "faults_served": dict(self._faults_served),
                "latency": self.latency,
                "wrapup_seconds": self.wrapup_seconds,
            } | self.events.stats()
