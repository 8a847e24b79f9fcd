"""The CloudAgent client: Generate Token and the two actions of the Disposition API.

A plain library (no Flask). Every upstream fault becomes an Outcome; nothing the upstream
does raises out of here.
"""

from __future__ import annotations

import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import requests
from requests.adapters import HTTPAdapter
from urllib3.exceptions import NewConnectionError

from .outcomes import (
    N_,
    UNAVAILABLE,
    Outcome,
    Reply,
    dispositions_from,
    parse_reply,
    refusal_outcome,
    set_outcome,
)
from .throttle import Throttled
from .tokens import (
    MintBudgetExhausted,
    MintFailed,
    StoreUnavailable,
    Token,
    TokenConflict,
    TokenStore,
    token_expiry,
)

__all__ = ["CloudAgentClient", "DispositionList", "make_session"]

log = logging.getLogger("webapp.cloudagent")

# Seconds without a new mint attempt after one that never reached CloudAgent, or that
# CloudAgent refused for bad credentials (neither uses up the hourly budget).
UNREACHABLE_HOLD = 5.0
CREDENTIALS_HOLD = 60.0
FAILURE_HOLD = 60.0  # any other failed mint: at most one attempt a minute while it fails
# What a bearer token may hold: anything else (spaces, CR/LF) would break or inject a header.
_TOKEN = re.compile(r"[A-Za-z0-9._~+/=-]{8,4096}")
TOKEN_PATH = "/ca_apis/CAToken/generateToken"  # noqa: S105
DISPOSITION_PATH = "/ca_apis/DispositionAPIV2"
# The most of an answer read (bytes, after any Content-Encoding): CloudAgent's largest, a list
# of thousands of dispositions, is about 100 KB. A larger answer is unreadable, and its
# connection dropped after at most this much plus one chunk: memory stays flat whatever is sent.
MAX_ANSWER_BYTES = 1024 * 1024
ANSWER_CHUNK = 64 * 1024
# callBackTime as CloudAgent reads it (ASCII digits: \d would take other scripts' digits too).
CALLBACK_TIME = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}")


@dataclass(frozen=True)
class DispositionList:
    """The account's disposition names, or the outcome that explains why there are none."""

    names: tuple[str, ...] = ()
    error: Outcome | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def make_session(base_url: str | None = None, pool_size: int = 256) -> requests.Session:
    """One Session per process; its pool at least the worker's threads (a cap, not a
    reservation: a smaller pool discards connections under load). No adapter retries:
    a retried Set whose first answer was lost would come back as 'already Disposed'.

    The environment (proxy variables, CA bundle) is read here, once: left to itself requests
    re-reads it and ~/.netrc on every call, about 0.3 ms of CPU each."""
    session = requests.Session()
    adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    if base_url:
        session.proxies.update(requests.utils.get_environ_proxies(base_url))
    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False
    return session


def _unavailable(message: str, reason: str) -> Outcome:
    return Outcome(kind=UNAVAILABLE, message=message, reason=reason)


def _never_sent(exc: requests.ConnectionError) -> bool:
    """True when the connection was never made, so CloudAgent cannot have seen the request."""
    if isinstance(exc, requests.ConnectTimeout):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, NewConnectionError)


class CloudAgentClient:
    def __init__(
        self,
        *,
        base_url: str,
        username: str,
        api_key: str,
        auth: str = "token",
        token_store: TokenStore | None = None,
        session: requests.Session | None = None,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        on_call: Callable[[str, float, int | None, str | None], None] | None = None,
        on_mint: Callable[[], None] | None = None,
    ) -> None:
        """`on_call(action, milliseconds, http_status or None, fault or None)` is told of
        every upstream call (`fault`: see `fault_of`); `on_mint()` of every token minted."""
        if auth not in ("token", "apikey"):
            raise ValueError(f"auth must be 'token' or 'apikey', not {auth!r}")
        if auth == "token" and token_store is None:
            raise ValueError("token auth needs a token_store")
        self.base_url = base_url.rstrip("/")
        self.username = username
        self._api_key = api_key
        self.auth = auth
        self.token_store = token_store
        self.session = session or make_session(base_url)
        self.timeout = (connect_timeout, read_timeout)
        self.clock = clock
        self.on_call = on_call
        self.on_mint = on_mint
        self.account = f"{self.base_url}|{username}"
        self._token: Token | None = None  # this process's copy of the shared token
        self._blocked_until = 0.0  # a sign-in conflict seen by this process holds until then
        # Each request's fixed part, by path and whether it carries the API key (see _request).
        self._prepared: dict[tuple[str, bool], _Fixed] = {}
        # HTTP 5xx answers: a WARNING each, at most one a minute per action and status.
        self.server_errors = Throttled(log)

    def __repr__(self) -> str:
        return f"CloudAgentClient({self.base_url!r}, username={self.username!r}, auth={self.auth})"

    # -- the two actions ---------------------------------------------------------------------

    def sign_in_conflict(self) -> float | None:
        """While another system's sign-ins hold this service's back: until when (epoch
        seconds). Raises StoreUnavailable if the token store does not answer."""
        if self.token_store is None:
            return None
        return self.token_store.conflict_until(self.account)

    def fetch_dispositions(self, agent_id: str, did: str, ucid: str) -> DispositionList:
        """The account's disposition names (action=get), straight from CloudAgent."""
        reply = self._call("get", self._body("get", agent_id, did, ucid))
        if isinstance(reply, Outcome):
            return DispositionList(error=reply)
        names = dispositions_from(reply)
        if names is not None:
            return DispositionList(names=names)
        log.warning(
            "cloudagent get: unreadable disposition list: http=%s body=%r",
            reply.http_status,
            reply.raw,
        )
        error = (
            refusal_outcome(reply)
            if reply.status and not reply.succeeded
            else Outcome(
                kind=UNAVAILABLE,
                message=N_("The disposition list could not be read."),
                reason="bad_response",
                upstream_status=reply.status or None,
                upstream_text=reply.text or None,
                http_status=reply.http_status,
                raw=reply.raw,
            )
        )
        return DispositionList(error=error)

    def set_disposition(
        self,
        *,
        agent_id: str,
        did: str,
        ucid: str,
        disposition: str,
        comments: str = "",
        pause: bool = False,
        pause_reason: str = "",
        callback_time: str = "",
    ) -> Outcome:
        """Set the call's disposition (action=Set). Never retried after it may have been sent.

        `callback_time` is CloudAgent's `callBackTime`, `YYYY-MM-DD HH:MM` in the account's
        zone, for dispositions with callbacks; sent only when given."""
        if callback_time and not CALLBACK_TIME.fullmatch(callback_time):
            raise ValueError(f"callback_time must be YYYY-MM-DD HH:MM, got {callback_time!r}")
        body = self._body("Set", agent_id, did, ucid)
        body["disposition"] = disposition
        body["comments"] = comments
        # CloudAgent pauses the agent when this is absent: always say it.
        body["pauseAfterDispose"] = "true" if pause else "false"
        if pause:
            body["pauseReason"] = pause_reason
        if callback_time:
            body["callBackTime"] = callback_time
        reply = self._call("Set", body)
        return reply if isinstance(reply, Outcome) else set_outcome(reply)

    def sign_in(self) -> Token | None:
        """Sign in as a request would (token auth): this process's or the stored token while
        fresh, else one minted under the store's lock, within its hourly budget. None in
        apikey auth, which has no sign-in. Raises MintFailed, MintBudgetExhausted,
        TokenConflict or StoreUnavailable: for checks that explain them (the go-live check);
        requests turn them into outcomes instead."""
        if self.auth == "apikey":
            return None
        assert self.token_store is not None
        now = self.clock()
        if self._token and self._token.fresh(now):
            return self._token
        stored = self.token_store.current(self.account)
        if stored and stored.fresh(now):
            self._token = stored
        else:
            self._token = self.token_store.replace(self.account, None, self._mint)
        return self._token

    # -- plumbing ----------------------------------------------------------------------------

    def _body(self, action: str, agent_id: str, did: str, ucid: str) -> dict[str, str]:
        return {
            "action": action,
            "userName": self.username,
            "agentID": agent_id,
            "did": did,
            "ucid": ucid,
            "autoRelease": "true",
        }

    def _call(self, action: str, body: dict[str, str]) -> Reply | Outcome:
        """POST to the Disposition API; on a refused token, get a new one and try again (safe:
        a refused request was not carried out). At most one mint per call: a token minted
        for this call and refused too ends it. A refused token that was only this process's
        stale copy costs no mint, so then the stored one is tried as well."""
        if self.auth == "token" and self.clock() < self._blocked_until:
            # A sign-in conflict holds minting back: the token we hold is dead, so sending it
            # would cost CloudAgent a call for nothing.
            return _unavailable(CONFLICT_MESSAGE, "token_conflict")
        refused: str | None = None
        conflict = False
        for _attempt in range(3):
            minted = False
            bearer = None  # apikey auth: the API key is sent instead
            if self.auth == "token":
                got = self._bearer(refused, conflict)
                if isinstance(got, Outcome):
                    return got
                token, minted = got
                bearer = token.value
            reply = self._post(action, DISPOSITION_PATH, body, bearer)
            if isinstance(reply, Outcome) or not reply.token_refused or self.auth == "apikey":
                return reply
            if minted and refused is not None:
                break  # a token minted because of a refusal was refused as well
            refused = token.value
            # "Invalid Token" (not "Token Expired"): someone else may have minted since.
            conflict = reply.token_invalid
        return refusal_outcome(reply)

    def _post(
        self, action: str, path: str, body: dict[str, str], bearer: str | None = None
    ) -> Reply | Outcome:
        """POST `body` as JSON with the bearer token, or without one the API key."""
        started = time.perf_counter()
        result = self._send(action, path, body, bearer, started)
        if self.on_call is not None:
            status = result.http_status if isinstance(result, Reply) else None
            ms = (time.perf_counter() - started) * 1000
            self.on_call(action, ms, status, fault_of(result))
        return result

    def _send(
        self,
        action: str,
        path: str,
        body: dict[str, str],
        bearer: str | None,
        started: float,
    ) -> Reply | Outcome:
        session = self.session
        try:
            request = self._request(path, bearer, body)
            # Never followed: a redirect would carry the API key or token to another URL.
            # Streamed, so that no more of the answer than MAX_ANSWER_BYTES is ever read.
            # Straight to the session's adapter with the session's settings: session.send()
            # adds only what nothing here uses (its cookie jar, never sent; response hooks,
            # none), and for a redirect it reads the whole answer, past MAX_ANSWER_BYTES, to
            # prepare the request it would follow (raising ValueError if it cannot).
            response = session.get_adapter(request.url).send(
                request,
                stream=True,
                timeout=self.timeout,
                verify=session.verify,
                cert=session.cert,
                # Without trust_env (make_session) that resolves to the session's own proxies.
                proxies=session.proxies
                if not session.trust_env
                else requests.utils.resolve_proxies(request, session.proxies, True),
            )
            try:
                raw = _text_of(response, action)
            finally:
                response.close()
        except requests.ConnectionError as exc:
            ms = (time.perf_counter() - started) * 1000
            if _never_sent(exc):
                log.warning("cloudagent %s: cannot connect after %.0f ms: %s", action, ms, exc)
                return _unavailable(
                    N_(
                        "CloudAgent could not be reached. Nothing was sent: save again in a moment."
                    ),
                    "unreachable",
                )
            log.warning("cloudagent %s: connection lost after %.0f ms: %s", action, ms, exc)
            return _unavailable(_LOST_ANSWER, "lost_answer")
        except requests.Timeout:
            ms = (time.perf_counter() - started) * 1000
            log.warning("cloudagent %s: no answer within %.0f ms", action, ms)
            return _unavailable(_LOST_ANSWER, "lost_answer")
        except requests.RequestException as exc:
            log.warning("cloudagent %s: request failed: %s", action, exc)
            return _unavailable(_LOST_ANSWER, "lost_answer")
        if response.is_redirect or 300 <= response.status_code < 400:
            log.warning(
                "cloudagent %s: answered HTTP %s (a redirect, not followed)",
                action,
                response.status_code,
            )
            raw = ""  # a fault like any other: no JSON body to read
        reply = parse_reply(response.status_code, raw)
        if response.status_code >= 500:
            # As loud as a timeout: a gateway's error page may follow a Set that went through.
            self.server_errors.warning(
                f"{action} {response.status_code}",
                "cloudagent %s: answered HTTP %s after %.0f ms (%s)%s",
                action,
                response.status_code,
                (time.perf_counter() - started) * 1000,
                _described(reply),
                ": the save's result is unknown" if action == "Set" else "",
            )
        # DEBUG: the request's own log line already lists each call, its status and time.
        log.debug(
            "cloudagent %s: http=%s status=%r text=%r latency_ms=%.0f",
            action,
            response.status_code,
            reply.status,
            reply.text[:200],
            (time.perf_counter() - started) * 1000,
        )
        return reply

    def _request(
        self, path: str, bearer: str | None, body: dict[str, str]
    ) -> requests.PreparedRequest:
        """The POST as PreparedRequest.prepare() makes it from the session's headers, Content-Type
        and the token or API key. All but the body and token is prepared once per URL and
        session (their headers as they are then): preparing it is most of prepare()'s CPU. Not
        session.post(), which would merge in the session's cookies, auth and settings too."""
        url = self.base_url + path  # base_url may be changed (tests point it elsewhere)
        fixed = self._prepared.get((path, bearer is None))
        if fixed is None or fixed.url != url or fixed.session is not self.session:
            fixed = _Fixed.of(url, self.session, None if bearer is not None else self._api_key)
            self._prepared[(path, bearer is None)] = fixed
        request = fixed.request.copy()  # headers of its own: `fixed` is shared by all threads
        if bearer is not None:
            header = ("Authorization", f"Bearer {bearer}")
            requests.utils.check_header_validity(header)  # as prepare_headers() checks each
            request.headers["Authorization"] = header[1]
        request.prepare_body(None, None, json=body)
        if fixed.url_auth:
            request.prepare_auth(None)  # after the body, as prepare() does
        return request

    def _bearer(self, refused: str | None, conflict: bool = False) -> tuple[Token, bool] | Outcome:
        """A token to send (and whether it was minted just now), or why there is none."""
        now = self.clock()
        if refused is None and self._token and self._token.fresh(now):
            return self._token, False
        assert self.token_store is not None
        minted: list[bool] = []

        def mint() -> Token:
            minted.append(True)
            return self._mint()

        try:
            stored = self.token_store.current(self.account)
            if stored and stored.value != refused and stored.fresh(now):
                self._token = stored
                return stored, False
            self._token = self.token_store.replace(self.account, refused, mint, conflict=conflict)
        except TokenConflict as held:
            self._blocked_until = held.until
            return _unavailable(CONFLICT_MESSAGE, "token_conflict")
        except StoreUnavailable as down:
            if refused is None and self._token and now < self._token.expires_at:
                return self._token, False  # due for renewal, still valid: better than failing
            log.error("cloudagent: the shared token store is unreachable: %s", down)
            return _unavailable(
                N_(
                    "The service's shared store is unreachable, so nothing was sent. "
                    "Save again in a moment."
                ),
                "store_unreachable",
            )
        except MintBudgetExhausted as held:
            log.error(
                "cloudagent: not minting a token for %s: %s",
                self.username,
                _HELD.get(str(held), str(held)),
            )
            return _unavailable(
                N_(
                    "The disposition service is busy signing in to CloudAgent. "
                    "Nothing was sent: save again in a few minutes."
                ),
                "mint_budget",
            )
        except MintFailed as failure:
            log.error("cloudagent: token mint failed for %s: %s", self.username, failure)
            return _unavailable(
                N_(
                    "The disposition service could not sign in to CloudAgent. "
                    "Nothing was sent: save again in a moment."
                ),
                "mint_failed",
            )
        return self._token, bool(minted)

    def _mint(self) -> Token:
        """Generate Token. Called only by the token store, under its lock."""
        reply = self._post("generateToken", TOKEN_PATH, {"userName": self.username})
        if isinstance(reply, Outcome):
            if reply.reason == "unreachable":  # never reached: nothing to count
                raise MintFailed(
                    reply.reason, counted=False, hold=UNREACHABLE_HOLD, detail=reply.reason
                )
            # A lost answer may still have minted (and killed the old token): it counts.
            raise MintFailed(reply.reason, hold=FAILURE_HOLD, detail=reply.reason)
        token = (reply.body or {}).get("token")
        if not isinstance(token, str) or not _TOKEN.fullmatch(token.strip()):
            refused = reply.text.lower() in ("invalid username or apikey", "username is null")
            # Never the body itself in the message: it may hold a (malformed) token.
            raise MintFailed(
                f"http={reply.http_status} status={reply.status!r} no usable token",
                counted=not refused,
                hold=CREDENTIALS_HOLD if refused else FAILURE_HOLD,
                http_status=reply.http_status,
                detail=_described(reply),
            )
        log.info("cloudagent: minted a new token for %s", self.username)
        if self.on_mint is not None:
            self.on_mint()
        token = token.strip()
        return Token(token, token_expiry(token, self.clock()))


@dataclass(frozen=True)
class _Fixed:
    """What every POST to one URL through one session has: method, URL and headers, prepared."""

    url: str
    session: requests.Session
    request: requests.PreparedRequest
    url_auth: bool  # a user and password in the URL, which requests sends as Basic auth

    @classmethod
    def of(cls, url: str, session: requests.Session, api_key: str | None) -> _Fixed:
        headers = {**session.headers, "Content-Type": "application/json"}
        if api_key is not None:
            headers["apiKey"] = api_key
        request = requests.PreparedRequest()
        request.prepare_method("POST")
        request.prepare_url(url, None)
        request.prepare_headers(headers)  # raises InvalidHeader as prepare() would
        # No prepare_cookies(): it adds no header from an empty jar, and no cookie is sent.
        return cls(url, session, request, any(requests.utils.get_auth_from_url(url)))


def _text_of(response: requests.Response, action: str) -> str:
    """The answer's text, read at most MAX_ANSWER_BYTES (+ a chunk) far; "" (an unreadable
    answer: nothing of it trusted) when it is longer."""
    body = bytearray()
    for chunk in response.iter_content(ANSWER_CHUNK):
        body += chunk
        if len(body) > MAX_ANSWER_BYTES:
            log.warning(
                "cloudagent %s: answer longer than %d bytes (HTTP %s), not read",
                action,
                MAX_ANSWER_BYTES,
                response.status_code,
            )
            return ""
    try:
        return body.decode(response.encoding or "utf-8", errors="replace")
    except LookupError:  # a charset Python does not know: as requests' .text does
        return body.decode("utf-8", errors="replace")


def _described(reply: Reply) -> str:
    """What an answer without a token was, without its body (which may hold a malformed
    token): CloudAgent's message text, or the kind of body and an HTML page's title."""
    if reply.body is not None:
        return reply.text[:200]
    raw = reply.raw.strip()
    if not raw:
        return "an empty body"
    if raw.startswith("<"):
        title = re.search(r"<title[^>]*>([^<]{0,120})", raw, re.IGNORECASE)
        return "an HTML page" + (f" titled {title.group(1).strip()!r}" if title else "")
    return "a body that is not JSON"


def fault_of(result: Reply | Outcome) -> str | None:
    """What went wrong with an upstream call, in a word (None: it was answered in good
    order, refusals included): unreachable, lost_answer, redirect, http_4xx, http_5xx,
    unreadable (not a JSON object), token_refused, upstream_error."""
    if isinstance(result, Outcome):
        return result.reason
    if 300 <= result.http_status < 400:
        return "redirect"
    if result.http_status >= 400:
        return f"http_{result.http_status // 100}xx"
    if result.body is None:
        return "unreadable"
    if result.token_refused:
        return "token_refused"
    if result.status.lower() == "error":
        return "upstream_error"
    return None


_HELD = {
    "budget": "10 attempts this hour already",
    "cooldown": "holding back after a failed attempt",
    "lock": "another process held the token lock for too long",
}
CONFLICT_MESSAGE = N_(
    "Saving is blocked: another system keeps signing in to this CloudAgent account, which "
    "signs this service out. Nothing was saved. Tell your supervisor; it clears by itself "
    "once only this service signs in."
)
_LOST_ANSWER = N_(
    "CloudAgent did not answer in time, so the result is unknown. "
    "Save again: if it was already recorded, you will be told."
)
