"""CloudAgent's two API endpoints as plain functions: (headers, JSON body) -> (status, body).

The bodies are copied from CloudAgent, including its inconsistencies (`message` vs `details`,
"false" vs "Fail"), because the widget has to cope with exactly these. Errors come with HTTP 200,
as CloudAgent sends them; only a body that is not a JSON object gets a 400.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from .state import Account, Call, DispositionRequest, Outcome, SetAttempt, Simulator

Body = dict[str, Any]
Response = tuple[int, Body]
Handler = Callable[[Simulator, Mapping[str, str], object], Response]


def _false(message: str) -> Body:
    return {"status": "false", "message": message, "data": None}


def _fail_message(message: str) -> Body:
    return {"status": "Fail", "message": message}


def _fail_details(details: str) -> Body:
    return {"details": details, "status": "Fail"}


def _invalid_body() -> Response:
    return 400, _false("Invalid request body")


_SET_FIELDS = (
    "action",
    "userName",
    "agentID",
    "did",
    "ucid",
    "disposition",
    "comments",
    "pauseAfterDispose",
    "pauseReason",
    "autoRelease",
    "callBackTime",
)

_OUTCOME_BODIES: dict[Outcome, Body] = {
    "queued": {"status": "Success", "message": "Disposition Queued Successfully"},
    "saved": {"details": "Disposition saved successfully", "status": "Success"},
    "already_disposed": {"details": "This call is already Disposed.", "status": "Fail"},
}


def _field(body: Mapping[str, Any], key: str) -> str | None:
    """A body value as text; None when the key is absent or null (CloudAgent treats both alike)."""
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


# --- Generate Token ---------------------------------------------------------------------------


def generate_token(sim: Simulator, headers: Mapping[str, str], body: object) -> Response:
    if not isinstance(body, dict):
        return _invalid_body()
    username = _field(body, "userName") or ""
    sim.count_request("generateToken", username)
    if not username:
        return 200, _false("UserName is null")
    account = sim.account(username)
    if account is None or headers.get("apiKey") != account.api_key:
        return 200, _false("Invalid userName or apiKey")
    token = sim.mint_token(username)
    if token is None:
        return 200, _false("Token generation limit exceeded. Please try after some time.")
    return 200, {"token": token, "message": ""}


# --- Set/Get Disposition ----------------------------------------------------------------------


def disposition_kind(body: object) -> str:
    """The request kind a disposition body counts as: "get", "Set" or "other"."""
    if not isinstance(body, dict):
        return "other"
    return {"get": "get", "set": "Set"}.get((_field(body, "action") or "").lower(), "other")


def username_of(body: object) -> str:
    return (_field(body, "userName") or "") if isinstance(body, dict) else ""


def disposition(sim: Simulator, headers: Mapping[str, str], body: object) -> Response:
    if not isinstance(body, dict):
        return _invalid_body()
    kind = disposition_kind(body)
    sim.count_request(kind)
    account, error = _authenticate(sim, headers, body)
    if error is not None:
        return 200, error
    assert account is not None  # _authenticate returns an account or an error
    if kind == "other":
        return 200, _fail_message("Invalid Action")
    if kind == "get":
        names = account.dispositions_for(_field(body, "did") or "")
        return 200, {"status": "Success", "details": list(names)}
    return 200, _set(sim, account, body)


def _authenticate(
    sim: Simulator, headers: Mapping[str, str], body: Mapping[str, Any]
) -> tuple[Account | None, Body | None]:
    username = _field(body, "userName") or ""
    authorization = headers.get("Authorization")
    api_key = headers.get("apiKey")
    if authorization is None and api_key is not None:
        return _authenticate_api_key(sim, username, api_key)

    # With neither header CloudAgent answers as for an empty token.
    token = _bearer_token(authorization or "")
    if not token:
        return None, _false("Token Should Not be Null or Empty.")
    status, account = sim.check_token(token)
    if status == "invalid":
        return None, _false("Invalid Token")
    if status == "expired" or account is None:
        return None, _false("Token Expired")
    if account.auth_mode == "BASIC_AUTH":
        return None, _false("Api Key Should Not be Null or Empty.")
    return _check_username(account, username)


def _authenticate_api_key(
    sim: Simulator, username: str, api_key: str
) -> tuple[Account | None, Body | None]:
    if not username:
        return None, _false("Username Should Not be Null or Empty.")
    account = sim.account(username)
    if account is None:
        return None, _false("Invalid User Details")
    if account.auth_mode == "TOKEN_AUTH":
        return None, _false("Token Should Not be Null or Empty.")
    if not api_key:
        return None, _false("Api Key Should Not be Null or Empty.")
    if api_key != account.api_key:
        return None, _false("Invalid User Details")
    return account, None


def _check_username(account: Account, username: str) -> tuple[Account | None, Body | None]:
    if not username:
        return None, _false("Username Should Not be Null or Empty.")
    if username != account.username:
        return None, _false("Invalid User Details")
    return account, None


def _bearer_token(header: str) -> str:
    scheme, _, rest = header.strip().partition(" ")
    return rest.strip() if scheme.lower() == "bearer" else header.strip()


def _set(sim: Simulator, account: Account, body: Mapping[str, Any]) -> Body:
    agent_id = _field(body, "agentID") or ""
    if agent_id not in account.agents:
        return _fail_details("Invalid agent")

    ucid = _field(body, "ucid")
    if ucid is None:
        return _fail_message("Invalid ucid")
    if not ucid:
        return _fail_details("Invalid ucid()")
    if len(ucid) >= 20:
        # CloudAgent answers an over-long ucid with this temporary-sounding error.
        return {"status": "Error", "details": "Unable to Dispose . Please retry after some time."}
    did = _field(body, "did") or ""
    call = sim.get_call(ucid)
    if call is None or call.did != did or did not in account.dids:
        return _fail_details(f"Invalid ucid [{ucid}] or did [{did}]")

    # From here on the request names a real call: record it, accepted or not.
    request = _disposition_request(agent_id, body)
    attempt = SetAttempt(request, {key: _field(body, key) for key in _SET_FIELDS})
    rejection = _reject_set(account, call, body, request)
    if rejection is not None:
        sim.record_rejected(call, attempt, rejection.get("details") or rejection["message"])
        return rejection
    return dict(_OUTCOME_BODIES[sim.submit_disposition(call, attempt)])


def _disposition_request(agent_id: str, body: Mapping[str, Any]) -> DispositionRequest:
    pause = _field(body, "pauseAfterDispose")
    return DispositionRequest(
        agent_id=agent_id,
        disposition=_field(body, "disposition") or "",
        comments=_field(body, "comments") or "",
        # Absent means true upstream; we treat an empty value the same way.
        pause_after_dispose=not pause or pause.lower() == "true",
        pause_reason=_field(body, "pauseReason") or "",
        callback_time=_field(body, "callBackTime") or "",
    )


def _reject_set(
    account: Account, call: Call, body: Mapping[str, Any], request: DispositionRequest
) -> Body | None:
    if call.agent_id != request.agent_id:
        return _fail_details("Agent is not on this call.")
    if _field(body, "disposition") is None:
        return _fail_message("Invalid Disposition")
    if not request.disposition:
        return _fail_details("Empty disposition code")
    if request.disposition not in account.dispositions_for(call.did):
        return _fail_details("Invalid Disposition")
    if request.callback_time and not _is_callback_time(request.callback_time):
        # Assumed (docs/cloudagent.md): the format is documented, the refusal is not.
        return _fail_details("Invalid callBackTime")
    if request.pause_after_dispose:
        if not request.pause_reason:
            return _fail_details("Provide pause reason")
        if request.pause_reason not in account.pause_reasons:
            return _fail_details("pauseReason is Invalid")
    return None


def _is_callback_time(value: str) -> bool:
    """CloudAgent's callBackTime: `YYYY-MM-DD HH:MM`, a real date and time."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9]{2}:[0-9]{2}", value):
        return False
    try:
        datetime.strptime(value, "%Y-%m-%d %H:%M")
    except ValueError:
        return False
    return True
