"""The agent's panel: open it from a signed launch link, save with htmx, show the outcome."""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime
from functools import lru_cache

from flask import (
    Blueprint,
    Flask,
    abort,
    current_app,
    g,
    make_response,
    render_template,
    request,
)
from flask.typing import ResponseReturnValue
from markupsafe import Markup

from .. import i18n
from ..audit import UNKNOWN, Attempt, AuditLog, AuditUnavailable, Earlier, RateLimited
from ..cloudagent import (
    ALREADY_DISPOSED,
    QUEUED,
    RESULT_UNKNOWN,
    SAVED,
    UNAVAILABLE,
    CloudAgentClient,
    DispositionCache,
    Outcome,
)
from ..config import Settings
from ..i18n import gettext as _
from ..i18n import gettext as in_agents_language  # a text marked where it was made
from ..web.before_send import ON_LOOP
from ..web.errors import error_page
from ..web.headers import policy_allowing_style
from ..web.logs import annotate
from . import callstate, context
from .callbacks import UPSTREAM_FORMAT, CallbackRule
from .forms import DispositionForm, csrf_matches, csrf_token_for
from .launch import Launch, LaunchError, plain_pairs, verify
from .onloop import PAIRS
from .recent import RecentChoices
from .recorded import FINISHED, Summary, recorded
from .shells import MARK, Filled
from .theme import accent_of, theme_of

log = logging.getLogger("webapp.panel")

bp = Blueprint("panel", __name__)

INVALID = "invalid"
# Why a panel that opened can no longer be used, as the host page is told (`refused`).
PANEL_EXPIRED = "panel_expired"
PANEL_INVALID = "panel_invalid"


def _security_check_failed() -> str:
    return _("The panel's security check failed. Open it again from the CRM; nothing was saved.")


SEARCH_FROM = 10  # longer lists get a search box


def _settings() -> Settings:
    return current_app.config["WIDGET"]


def _callbacks() -> CallbackRule:
    return current_app.extensions["callbacks"]


def _recent() -> RecentChoices:
    return current_app.extensions["recent"]


def _form(call: Launch, token: str) -> DispositionForm:
    """The posted form for this call, checked against the account's dispositions if they can
    be had (otherwise CloudAgent judges the name)."""
    cache: DispositionCache = current_app.extensions["dispositions"]
    listing = cache.get(call.agent_id, call.did, call.ucid)
    return DispositionForm(
        formdata=request.form,
        meta={"csrf_context": token},
        dispositions=_offered(listing.names) if listing.ok else None,
        pause_reasons=_settings().pause_reasons,
        callbacks=_callbacks(),
    )


def _render_form(
    call: Launch,
    token: str,
    template: str,
    *,
    call_state: Markup | None = None,
    events_url: str | None = None,
    app: Flask | None = None,
    language: str | None = None,
    wait: bool = True,
    **look: object,
) -> Filled:
    """The panel page or its form: the shell for this language, look and list (rendered once,
    webapp.panel.shells), filled in with this call's values. `app` and `language`, when the
    caller holds them, are not looked up again. `wait=False` on the bridge's loop: the list
    and recent choices from memory only (webapp.panel.onloop)."""
    app = app or current_app._get_current_object()  # looked through once at most
    extensions = app.extensions
    cache: DispositionCache = extensions["dispositions"]
    listing = cache.get(call.agent_id, call.did, call.ucid, wait=wait)
    if not listing.ok:
        log.warning("dispositions unavailable for did %s: %s", call.did, listing.error.reason)
    settings: Settings = app.config["WIDGET"]
    names = listing.names if listing.ok else None
    recent: tuple[str, ...] = ()
    if names:
        offered = _offered(names)  # a name no longer on the list is not offered again
        recent_of: RecentChoices = extensions["recent"]
        held = recent_of.get(call.agent_id, call.did, wait=wait)
        recent = tuple(n for n in held if n in offered)
    callbacks: CallbackRule = extensions["callbacks"]
    callback = callbacks.field(names) if names else None
    language = language or i18n.current()
    days = callbacks.days(language, i18n.gettext) if callback else None
    compiled = i18n.template(template, app=app, language=language)
    values = {
        "ucid": call.ucid,
        "agent_id": call.agent_id,
        "did": call.did,
        "context": token,
        "csrf_token": csrf_token_for(token, settings.secret_key),
    }
    if call_state is not None:
        values["call_state"] = call_state
    if events_url is not None:
        values["events_url"] = events_url

    def render(filled: Mapping[str, str]) -> str:
        return render_template(
            compiled,
            call=_CallValues(filled["ucid"], filled["agent_id"], filled["did"]),
            context=filled["context"],
            csrf_token=filled["csrf_token"],
            call_state=filled.get("call_state"),
            events_url=filled.get("events_url"),
            dispositions=names,
            recent=recent,
            pause_reasons=settings.pause_reasons,
            callback=callback,
            callback_days=days,
            searchable=len(names or ()) > SEARCH_FROM,
            **look,
        )

    if names and _holds_marker(names):  # CloudAgent's text could pass for a call value's place
        return Filled(render(values).encode(), None)
    key = (compiled, names, recent, callback, days, tuple(sorted(look.items())), *values.keys())
    return extensions["shells"].fill(key, render, values)


@lru_cache(maxsize=256)
def _holds_marker(names: tuple[str, ...]) -> bool:
    return any(MARK in name for name in names)


@dataclass(frozen=True)
class _CallValues:
    """What the panel's templates show of the call (the shell's markers, or the values)."""

    ucid: str
    agent_id: str
    did: str


@lru_cache(maxsize=256)
def _offered(names: tuple[str, ...]) -> frozenset[str]:
    return frozenset(names)


@bp.get("/disposition")
def launch() -> ResponseReturnValue:
    # Flask's proxies looked through once each: every panel comes here, and each look-up
    # through a proxy costs more than most of what is done with what it finds.
    app = current_app._get_current_object()
    environ = request.environ
    settings: Settings = app.config["WIDGET"]
    try:
        call = verify(
            environ.get(PAIRS)  # read already by onloop's question
            or plain_pairs(environ.get("QUERY_STRING", ""))
            or request.args.items(multi=True),
            settings.launch_secret,
            max_age=settings.launch_max_age,
            signing=settings.launch_signing,
        )
    except LaunchError as refused:
        # The reason goes to the log only; the page echoes nothing of the link.
        log.warning("launch refused: %s", refused)
        # The link's lang, though unverified, only picks one of our own catalogues.
        i18n.use(i18n.choose(request.args.get("lang")))
        return render_template(i18n.template("forbidden.html"), refused=refused.reason), 403
    # The CRM's choice of look; a value the panel does not know is logged and ignored.
    theme = theme_of(call.extra.get("theme"))
    accent = accent_of(call.extra.get("accent"))
    if call.extra.get("theme", theme) != theme or (call.extra.get("accent") and not accent):
        log.warning("launch: theme or accent not understood, using the default look")
    asked = call.extra.get("lang")
    language = i18n.choose(asked, app=app, environ=environ)
    if asked and i18n.primary(asked) != language:
        log.warning("launch: language %r not available, using %s", asked, language)
    i18n.use(language, app=app)
    token = context.issue(call, settings.secret_key, language)
    page = _render_form(
        call,
        token,
        "panel.html",
        call_state=callstate.for_page(call.ucid, app),
        events_url=callstate.events_url(token, app),
        app=app,
        language=language,
        wait=ON_LOOP not in environ,  # on the bridge's loop: from memory only
        theme=theme,
        accent=accent,
    )
    # What make_response makes of a str, its content type stated rather than worked out.
    response = app.response_class(page.body, content_type="text/html; charset=utf-8")
    response.deflated = page.deflated
    if accent is not None:
        response.headers["Content-Security-Policy"] = policy_allowing_style(accent.csp_source)
    return response


def _outcome(
    kind: str, message: str, status: int = 200, *, call: Launch | None = None, **extra: object
) -> ResponseReturnValue:
    """The outcome fragment: its shell (rendered once per language, kind and which of its
    parts it has, webapp.panel.shells) with this answer's values put in, as the panel is.
    A form's field errors (rare) are rendered whole."""
    compiled = i18n.template("_outcome.html")
    if "errors" in extra:
        return render_template(compiled, kind=kind, message=message, call=call, **extra), status
    recorded = extra.pop("recorded", None)
    summary = extra.pop("summary", None)
    values = {
        "message": message,
        "disposition": extra.pop("disposition", None) or "",
        "callback_time": extra.pop("callback_time", None) or "",
    }
    if call is not None:
        values["ucid"] = call.ucid
    if recorded is not None:
        values["recorded"] = recorded.disposition or ""
    if summary:  # a line left empty is not a value: the template leaves it out (or says No)
        values |= {f"summary_{name}": summary[name] for name in _SUMMARY if summary[name]}

    def render(filled: Mapping[str, str]) -> str:
        return render_template(
            compiled,
            kind=kind,
            message=filled["message"],
            call=None if call is None else _CallValues(filled["ucid"], "", ""),
            disposition=filled["disposition"],
            callback_time=filled["callback_time"],
            recorded=recorded and replace(recorded, disposition=filled["recorded"]),
            summary={n: filled.get(f"summary_{n}", "") for n in _SUMMARY} if summary else summary,
            **extra,
        )

    # Markers are never empty: what the template branches on is in the key, as the values
    # present and the words of our own (kind, the recorded reason, refused, ...).
    reason = None if recorded is None else recorded.reason
    key = (compiled, kind, reason, bool(summary), tuple(sorted(extra.items())), *values.keys())
    return current_app.extensions["outcome_shells"].page(key, render, values), status


_SUMMARY = ("disposition", "callback", "pause")  # the finished panel's lines (_summary)


def _context() -> tuple[Launch, str]:
    """The call this request is for, from its signed context; aborts with a fragment if not."""
    token = request.form.get("context", "")
    settings = _settings()
    try:
        call = context.read(token, settings.secret_key, settings.context_max_age)
    except context.ContextError as error:
        log.warning("panel request refused: context %s", error)
        if "log_fields" in g:  # counted as refused, never as a save (webapp.web.metrics)
            annotate(outcome=INVALID, reason="expired" if error.expired else "context")
        if error.expired:
            message = _("This panel has expired. Open it again from the CRM; nothing was saved.")
        else:
            message = _("This panel is not valid. Open it again from the CRM; nothing was saved.")
        refused = PANEL_EXPIRED if error.expired else PANEL_INVALID
        abort(make_response(_outcome(INVALID, message, 403, clear_errors=True, refused=refused)))
    i18n.use(call.language)  # the panel's language, chosen when it opened
    return call, token


def _checked() -> tuple[Launch, str]:
    """The call of a request from the panel, whose context and CSRF token are both good;
    checked before anything else, so that no bad request costs a CloudAgent call."""
    call, token = _context()
    if not csrf_matches(request.form.get("csrf_token"), token, _settings().secret_key):
        log.warning("panel request refused: CSRF token missing or wrong")
        if "log_fields" in g:
            annotate(agent=call.agent_id, ucid=call.ucid, outcome=INVALID, reason="csrf")
        abort(
            make_response(
                _outcome(
                    INVALID,
                    _security_check_failed(),
                    403,
                    call=call,
                    clear_errors=True,
                    refused=PANEL_INVALID,
                )
            )
        )
    return call, token


@bp.post("/disposition/form")
def reload_form() -> ResponseReturnValue:
    """The form again, for the Try again button when the disposition list failed to load."""
    call, token = _checked()
    return _render_form(call, token, "_form.html").body


@bp.post("/disposition/save")
def save() -> ResponseReturnValue:
    call, token = _checked()
    annotate(agent=call.agent_id, ucid=call.ucid)
    form = _form(call, token)
    if not form.validate():
        if form.csrf_token.errors:
            log.warning("save refused: CSRF token %s", form.csrf_token.errors[0])
            annotate(outcome=INVALID, reason="csrf")
            return _outcome(
                INVALID,
                _security_check_failed(),
                403,
                call=call,
                clear_errors=True,
                refused=PANEL_INVALID,
            )
        errors = {name: str(messages[0]) for name, messages in form.errors.items()}
        annotate(outcome=INVALID, reason="form", fields=sorted(errors))
        return _outcome(
            INVALID,
            " ".join(errors.values()),
            422,
            call=call,
            errors=errors,
            disposition=form.disposition.data,
        )

    try:
        outcome, earlier = _record_and_send(call, form)
    except RateLimited as limited:
        # Only saves that would reach CloudAgent count against the agent's limit.
        annotate(outcome=UNAVAILABLE, reason="rate_limited")
        seconds = max(1, round(limited.wait))
        response = make_response(
            _outcome(
                UNAVAILABLE,
                _(
                    "Too many saves in a short time. "
                    "Nothing was sent: save again in %(seconds)s s.",
                    seconds=seconds,
                ),
                429,
                call=call,
            )
        )
        response.headers["Retry-After"] = str(seconds)
        return response
    annotate(outcome=outcome.kind, reason=outcome.reason)
    message = in_agents_language(outcome.message)  # the library's English, or our own words
    if outcome.kind in (QUEUED, SAVED) and form.callback_at is not None:
        when = _callbacks().spoken(form.callback_at, i18n.current())
        message += " " + _("Callback at %(when)s.", when=when)
    if outcome.kind in (QUEUED, SAVED):
        _recent().saved(call.agent_id, call.did, form.disposition.data)
    sent = Summary(
        form.disposition.data,
        form.callback_upstream or "",
        bool(form.pause.data),
        form.pause_reason.data or "",
    )
    holds = recorded(outcome, earlier, sent)
    return _outcome(
        outcome.kind,
        message,
        call=call,
        reason=outcome.reason,
        unknown=outcome.reason in RESULT_UNKNOWN,
        disposition=form.disposition.data,
        callback_time=form.callback_upstream,
        recorded=holds,
        finished=outcome.kind in FINISHED,
        summary=_summary(holds.summary),
        clear_errors=True,
    )


def _summary(summary: Summary | None) -> dict[str, str] | None:
    """The finished panel's lines, in the agent's words: what CloudAgent holds."""
    if summary is None:
        return None
    callback = ""
    if summary.callback_time:
        rule = _callbacks()
        at = datetime.strptime(summary.callback_time, UPSTREAM_FORMAT).replace(tzinfo=rule.zone)
        callback = rule.spoken(at, i18n.current())
    return {
        "disposition": summary.disposition,
        "callback": callback,
        "pause": summary.pause_reason if summary.pause else "",
    }


def _record_and_send(call: Launch, form: DispositionForm) -> tuple[Outcome, Earlier | None]:
    """Write the attempt to the audit log (if the agent's save limit allows: else
    RateLimited), call CloudAgent, complete the row. With the outcome comes, after "already
    disposed", the agent's earlier save of the call that it was read against."""
    audit: AuditLog = current_app.extensions["audit"]
    client: CloudAgentClient = current_app.extensions["cloudagent"]
    disposition = form.disposition.data
    pause = bool(form.pause.data)
    writing = time.perf_counter()
    attempt = Attempt(
        agent=call.agent_id,
        ucid=call.ucid,
        did=call.did,
        disposition=disposition,
        pause=pause,
        pause_reason=form.pause_reason.data or "",
        request_id=g.get("request_id"),
        callback_time=form.callback_upstream,
    )
    entry = current_app.extensions["save_limiter"].begin(audit, attempt)
    started = time.perf_counter()
    audit_ms = (started - writing) * 1000
    try:
        outcome = client.set_disposition(
            agent_id=call.agent_id,
            did=call.did,
            ucid=call.ucid,
            disposition=disposition,
            comments=form.comments.data or "",
            pause=pause,
            pause_reason=form.pause_reason.data or "",
            callback_time=form.callback_upstream,
        )
    except BaseException:
        # The row must not stay open-ended: the error handler tells the agent "result unknown".
        audit.finish(
            entry,
            outcome=UNKNOWN,
            reason="internal_error",
            upstream_status=None,
            upstream_text=None,
            latency_ms=(time.perf_counter() - started) * 1000,
        )
        raise
    latency = (time.perf_counter() - started) * 1000
    earlier = None
    if outcome.kind == ALREADY_DISPOSED:
        earlier = audit.earlier_attempt(call.ucid, call.agent_id, entry)
        outcome = _after_earlier_save(outcome, earlier, attempt)
    writing = time.perf_counter()
    audit.finish(
        entry,
        outcome=UNKNOWN if outcome.reason in RESULT_UNKNOWN else outcome.kind,
        reason=outcome.reason,
        upstream_status=outcome.upstream_status,
        upstream_text=outcome.upstream_text,
        latency_ms=latency,
    )
    # Time spent writing the audit trail: what a slow or contended database adds to a save.
    annotate(audit_ms=round(audit_ms + (time.perf_counter() - writing) * 1000, 1))
    return outcome, earlier


def _after_earlier_save(outcome: Outcome, earlier: Earlier | None, attempt: Attempt) -> Outcome:
    """'Already disposed' when this agent's latest earlier save of the call went through
    (saved or queued) or may have (its answer was lost, on the way from CloudAgent or from
    this service to the browser): most likely that save is what CloudAgent has. Say so rather
    than report a failure."""
    if earlier is None or earlier.outcome not in (SAVED, QUEUED, UNKNOWN):
        return outcome
    if earlier.same_as(attempt):
        return replace(
            outcome,
            kind=SAVED,
            reason="saved_earlier",
            message=_("Your earlier save went through: CloudAgent already has this disposition."),
        )
    if earlier.outcome == UNKNOWN:
        message = _(
            "This call already has a disposition, most likely your earlier save of "
            "“%(disposition)s”, whose answer was lost. Nothing was changed.",
            disposition=earlier.disposition,
        )
    else:
        message = _(
            "This call already has a disposition: your earlier save of "
            "“%(disposition)s” went through. Nothing was changed.",
            disposition=earlier.disposition,
        )
    return replace(outcome, reason="saved_earlier_other", message=message)


@bp.app_errorhandler(AuditUnavailable)
def audit_unavailable(error: AuditUnavailable) -> ResponseReturnValue:
    """The audit log refused the row written before CloudAgent is called: nothing was sent,
    and the agent is told so (503, the form kept) rather than saving without a trail."""
    settings = _settings()
    try:
        call = context.read(
            request.form.get("context", ""), settings.secret_key, settings.context_max_age
        )
        i18n.use(call.language)
    except context.ContextError:
        call = None
    if "log_fields" in g:
        annotate(outcome=UNAVAILABLE, reason="audit_unavailable")
    if not request.headers.get("HX-Request"):
        return error_page(503, "Service Unavailable")
    body = render_template(
        i18n.template("_outcome.html"),
        kind=UNAVAILABLE,
        message=_(
            "The service's audit log is unreachable, so nothing was sent to CloudAgent. "
            "Save again in a moment."
        ),
        call=call,
        reason="audit_unavailable",
        disposition=request.form.get("disposition", ""),
    )
    return body, 503, {"Retry-After": "5"}
