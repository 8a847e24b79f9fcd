"""The disposition widget: a Flask service a CRM page embeds in an iframe, one call at a time."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from flask import Flask, Request
from werkzeug.routing import MapAdapter, Rule

from . import demo, events, i18n, panel, stores
from .audit.cli import audit as audit_command
from .cloudagent import CloudAgentClient, make_session
from .config import Settings, load_settings
from .golive import cloudagent as cloudagent_command
from .web import assets, compression, errors, headers, health, logs, metrics, responses

log = logging.getLogger("webapp")

ROOT = Path(__file__).resolve().parent.parent
# Set by gunicorn's master (gunicorn.conf.py) to its pid once check_start_up() passed: its
# workers then start even while a store is away, since the configuration was proven good.
MASTER_CHECKED = "WIDGET_MASTER_CHECKED"


def check_start_up(env: Mapping[str, str] | None = None) -> None:
    """What an instance's first start must find, checked once by gunicorn's master before any
    worker: valid settings and an audit database that answers (within 10 s) with a schema this
    release knows. Raises ConfigError, one line naming the variable."""
    instance_path = Flask(__name__, static_folder=None).instance_path
    stores.check_audit_database(load_settings(env, instance_path=instance_path))


def _master_checked(env: Mapping[str, str] | None) -> bool:
    """A gunicorn worker whose master checked the stores at the instance's first start: a
    store away now is an outage to ride out, not a wrong URL. Matched to the parent's pid, so
    a marker leaked into a shell makes no CLI lenient."""
    source = os.environ if env is None else env
    return source.get(MASTER_CHECKED) == str(os.getppid())


class _App(Flask):
    """Flask, keeping two answers it works out again on every request: ensure_sync's for each
    hook and view (five a panel, each five calls into inspect), and the URL map bound to the
    request's host (the host checked twice and IDNA-encoded, a tenth of a hello's CPU).
    tests/test_app.py holds both to Flask's own."""

    _SYNC_MAX = 256  # the app's own hooks and views; a per-request function is not kept
    _BOUND_MAX = 64  # hosts (a client chooses its Host header: past this, the oldest go)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._sync: dict[Callable[..., Any], Callable[..., Any]] = {}
        self._bound: dict[tuple[str | None, ...], tuple[str, _Adapter]] = {}

    def create_url_adapter(self, request: Request | None) -> MapAdapter | None:
        config = self.config
        if (
            request is None
            or request.trusted_hosts is not None
            or config["TRUSTED_HOSTS"] is not None
            or config["SERVER_NAME"] is not None
            or self.url_map.host_matching
            or self.subdomain_matching
            or "HTTP_UPGRADE" in request.environ  # werkzeug may bind it as a WebSocket's
        ):
            return super().create_url_adapter(request)
        environ = request.environ
        # What werkzeug's bind_to_environ reads but the path, query and method (and the
        # Connection header, which only counts beside an Upgrade).
        key = (
            environ.get("HTTP_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
            environ["wsgi.url_scheme"],
            environ.get("SCRIPT_NAME"),
        )
        bound = self._bound.get(key)
        if bound is None:
            adapter = super().create_url_adapter(request)  # raises for a host it refuses
            if adapter is None:
                return None
            kept = _Adapter.__new__(_Adapter)
            kept.__dict__.update(adapter.__dict__, matched={})
            if len(self._bound) >= self._BOUND_MAX:  # a client sending many hosts: the
                for old in list(self._bound)[: self._BOUND_MAX // 2]:  # oldest half goes
                    self._bound.pop(old, None)
            self._bound[key] = (request.host, kept)
        else:
            host, kept = bound
            request.host = host  # type: ignore[misc]  # as Flask sets it
        adapter = _Adapter.__new__(_Adapter)  # the kept one, never changed, copied
        adapter.__dict__.update(kept.__dict__)
        path, query = environ.get("PATH_INFO"), environ.get("QUERY_STRING")
        adapter.path_info = "/" if path is None else _decoded(path)
        adapter.query_args = None if query is None else _decoded(query)
        adapter.default_method = environ["REQUEST_METHOD"]
        return adapter

    def ensure_sync(self, func: Callable[..., Any]) -> Callable[..., Any]:
        sync = self._sync.get(func)
        if sync is None:
            sync = super().ensure_sync(func)
            if len(self._sync) < self._SYNC_MAX:
                self._sync[func] = sync
        return sync


class _Adapter(MapAdapter):
    """A bound URL map that keeps, per host, which rule each path and method matched, for
    the rules that take no values from the path (the panel's, /healthz, /embed.js, ...),
    when the path is the rule's own: werkzeug's matcher walks the map for every request.
    Flask adds no rule once it serves its first request, so what matched stays matched;
    anything else (a value in the path, a path werkzeug reads another way such as
    //healthz, a redirect, a 404 or 405) is matched by werkzeug every time. So at most one
    entry per rule and method: a client cannot grow it."""

    matched: dict[tuple[str, str], Rule]  # shared by the adapters of one host

    def match(  # type: ignore[override]
        self,
        path_info: str | None = None,
        method: str | None = None,
        return_rule: bool = False,
        query_args: Mapping[str, Any] | str | None = None,
        websocket: bool | None = None,
    ) -> tuple[Any, Mapping[str, Any]]:
        default = path_info is None and method is None and websocket is None
        if default:
            key = (self.path_info, self.default_method.upper())
            rule = self.matched.get(key)
            if rule is not None:
                return (rule if return_rule else rule.endpoint), {}
        rule, values = super().match(path_info, method, True, query_args, websocket)
        if default and not values and not rule.arguments and self.path_info == rule.rule:
            self.matched[key] = rule
        return (rule if return_rule else rule.endpoint), values


def _decoded(value: str) -> str:
    return value.encode("latin-1").decode(errors="replace")  # PEP 3333's, as werkzeug's


def create_app(env: Mapping[str, str] | None = None) -> Flask:
    """Build the app from WIDGET_* settings (the process environment unless `env` is given).

    Raises ConfigError, one line naming the variable, when the configuration is unusable.
    """
    # No Flask static route: assets are served under content-hashed URLs (webapp.web.assets).
    app = _App(
        __name__,
        instance_relative_config=True,
        template_folder=str(ROOT / "templates"),
        static_folder=None,
    )
    app.static_folder = str(ROOT / "static")
    app.response_class = responses.Response
    settings = load_settings(env, instance_path=app.instance_path)
    if settings.demo:
        settings = _start_demo_upstream(app, settings)
    app.config.update(
        # No SECRET_KEY: nothing uses Flask's session (no cookies), and without a key Flask
        # skips building a session serializer on every request. WTForms' CSRF gets its own.
        WTF_CSRF_SECRET_KEY=settings.secret_key,
        WIDGET=settings,
        # A save is a few hundred bytes: anything much larger is not an agent's form.
        MAX_CONTENT_LENGTH=16 * 1024,
        MAX_FORM_PARTS=50,
    )
    logs.init_app(app, settings.trusted_proxies)
    i18n.init_app(app, ROOT / "translations", settings.default_language)
    metrics.init_app(app, settings.metrics_token)
    app.extensions["cloudagent"] = _make_client(app, settings)
    metrics.watch_tokens(app, app.extensions["cloudagent"])
    # Audit log, save limiter, dispositions cache, readiness: SQLite or Redis + PostgreSQL.
    stores.init_app(app, settings, app.extensions["cloudagent"], strict=not _master_checked(env))
    metrics.watch_audit(app, app.extensions["audit"])
    app.extensions["assets"] = assets.build_manifest(ROOT / "static")
    app.jinja_env.globals.update(
        asset_url=assets.asset_url,
        asset_integrity=assets.asset_integrity,
        inline_css=assets.inline_css,
        comments_max=panel.COMMENTS_MAX,
        script_texts=panel.script_texts,
    )
    errors.init_app(app)
    headers.init_app(app, style_hashes=assets.inline_css_hash(app.extensions["assets"]))
    compression.init_app(app)
    app.register_blueprint(assets.bp)
    app.register_blueprint(health.bp)
    events.init_app(app, settings)  # before the panel, which reads its calls' state
    panel.init_app(app, settings)
    if settings.demo:
        app.register_blueprint(demo.bp)
    app.cli.add_command(audit_command)
    app.cli.add_command(cloudagent_command)
    if any("*" in origin for origin in settings.frame_ancestors):
        log.warning(
            "WIDGET_FRAME_ANCESTORS: entries with '*' may frame the widget but never "
            "receive its postMessage events, which need exact origins"
        )
    if not settings.launch_signing:
        log.warning("WIDGET_LAUNCH_SIGNING=off: launch links are NOT verified")
    if settings.allow_insecure and not settings.demo:
        log.warning(
            "WIDGET_ALLOW_INSECURE=1: insecure settings are allowed (launch links unsigned, "
            "CloudAgent over http:// or http:// CRM origins); for development only"
        )
    return app


def _make_client(app: Flask, settings: Settings) -> CloudAgentClient:
    counted = app.extensions.get("metrics")
    store = None
    if settings.cloudagent_auth == "token":
        store = stores.token_store(app, settings)
    on_call = logs.record_upstream
    if counted is not None:

        def on_call(action: str, ms: float, status: int | None, fault: str | None) -> None:
            logs.record_upstream(action, ms, status, fault)
            counted.upstream_call(action, ms, status, fault)

    return CloudAgentClient(
        base_url=settings.cloudagent_url,
        username=settings.cloudagent_username,
        api_key=settings.cloudagent_api_key,
        auth=settings.cloudagent_auth,
        token_store=store,
        session=make_session(settings.cloudagent_url),
        connect_timeout=settings.connect_timeout,
        read_timeout=settings.read_timeout,
        on_call=on_call,
        on_mint=counted.token_minted if counted is not None else None,
    )


def _start_demo_upstream(app: Flask, settings: Settings) -> Settings:
    """Demo mode: serve the built-in CloudAgent simulator on a loopback port of this process
    and point the client at it, so the widget runs end to end with no account."""
    from dataclasses import replace

    from .simulator import serve_in_thread

    simulator, url = serve_in_thread()
    app.extensions["simulator"] = simulator
    log.warning("demo mode: no WIDGET_CLOUDAGENT_USERNAME, using the built-in simulator at %s", url)
    # The simulator's wrap-up time is the demo campaign's: CloudAgent's Disconnect starts the
    # panel's clock with it, unless the operator set WIDGET_WRAPUP_SECONDS.
    wrapup = settings.wrapup_seconds
    if wrapup is None:
        wrapup = int(simulator.wrapup_seconds)
    return replace(settings, cloudagent_url=url, wrapup_seconds=wrapup)
