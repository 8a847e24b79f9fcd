"""Settings read once from the environment at start-up, validated.

A missing or malformed value raises ConfigError whose message is one line naming the variable,
so an operator sees exactly what to fix.
"""

from __future__ import annotations

import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

DEFAULT_CLOUDAGENT_URL = "https://in1-ccaas-api.ozonetel.com"
# The Subscribe API (real-time call events) lives on a host of its own; the US one is
# https://subscription.ccaas.ozonetel.com (docs/cloudagent.md, CloudAgent's events).
DEFAULT_EVENTS_API = "https://subscription.ozonetel.com"
EVENTS_TOKEN_MIN = 32
DEFAULT_PAUSE_REASONS = ("Break", "Lunch", "Training", "Meeting", "Bio break")
DEFAULT_TIMEZONE = "Asia/Kolkata"  # CloudAgent's home: its callBackTime is read there
# Credentials of the built-in simulator's demo account (not secrets: they open nothing real).
DEMO_USERNAME = "demo"
DEMO_API_KEY = "demo-api-key"  # noqa: S105


# Set on a production host only: with any of them, a missing user name is an error, not demo mode.
PRODUCTION_ONLY = (
    "WIDGET_CLOUDAGENT_API_KEY",
    "WIDGET_SECRET_KEY",
    "WIDGET_LAUNCH_SECRET",
    "WIDGET_REDIS_URL",
    "WIDGET_DATABASE_URL",
    "WIDGET_EVENTS_TOKEN",
)


IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class ConfigError(ValueError):
    """A configuration value is missing or malformed; str() is one line naming the variable."""


@dataclass(frozen=True)
class Settings:
    secret_key: str = field(repr=False)
    launch_secret: str = field(repr=False)
    launch_max_age: int
    context_max_age: int
    launch_signing: bool
    cloudagent_url: str
    cloudagent_username: str
    cloudagent_api_key: str = field(repr=False)
    cloudagent_auth: str
    frame_ancestors: tuple[str, ...]
    pause_reasons: tuple[str, ...]
    data_dir: Path
    connect_timeout: float
    read_timeout: float
    dispositions_ttl: float
    saves_per_minute: int
    demo: bool
    # Several instances: shared state on Redis, the audit log on a database server. Both URLs
    # may carry a password: kept out of repr() and logged only through redact_url().
    redis_url: str = field(default="", repr=False)
    database_url: str = field(default="", repr=False)
    instance_name: str = ""
    # Dispositions that need a callback time (empty: every name saying "call back" or
    # "callback"), and the zone CloudAgent reads callBackTime in.
    callback_dispositions: tuple[str, ...] = ()
    cloudagent_timezone: str = DEFAULT_TIMEZONE
    allow_insecure: bool = False  # WIDGET_ALLOW_INSECURE=1: signing off or http:// allowed
    # GET /metrics with "Authorization: Bearer <this>"; empty: no metrics, no endpoint.
    metrics_token: str = field(default="", repr=False)
    # The panel's language when neither the launch link nor the browser names one it has.
    default_language: str = "en"
    # Days of audit trail `flask audit prune` keeps.
    audit_retention_days: int = 400
    # Peers (load balancers, proxies) whose X-Request-ID is taken; empty: nobody's.
    trusted_proxies: tuple[IPNetwork, ...] = ()
    # The secret path segment of the event receivers (/cloudagent/events/<token>/...);
    # empty: no receivers, nothing to subscribe.
    events_token: str = field(default="", repr=False)
    # The Subscribe API's base URL (unused in demo mode: `events_api` is the simulator).
    cloudagent_events_api: str = DEFAULT_EVENTS_API
    # Seconds of wrap-up a CloudAgent Disconnect starts (the campaign's setting); None: no clock.
    wrapup_seconds: int | None = None

    @property
    def frame_ancestors_header(self) -> str:
        return " ".join(self.frame_ancestors)

    @property
    def events_api(self) -> str:
        """Where to subscribe: demo mode's simulator serves the Subscribe API beside the
        others, so it is wherever cloudagent_url was pointed at start-up."""
        return self.cloudagent_url if self.demo else self.cloudagent_events_api


def _number(env: Mapping[str, str], name: str, default: float, *, low: float, high: float) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}: expected a number, got {raw!r}") from None
    if not low <= value <= high:
        raise ConfigError(f"{name}: must be between {low:g} and {high:g}, got {raw}")
    return value


# An origin as CSP's frame-ancestors and postMessage take it: scheme://host[:port], the host
# in ASCII (punycode for an IDN), optionally one leading "*." label; nothing else at all, since
# the value lands verbatim in the Content-Security-Policy header (a ';' would start a directive).
_ORIGIN = re.compile(
    r"(?P<scheme>https?)://(?P<host>(?:\*\.)?[a-z0-9](?:[a-z0-9-]*[a-z0-9])?"
    r"(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)*|\[[0-9a-f:.]+\])(?::(?P<port>[0-9]{1,5}))?/?",
    re.IGNORECASE | re.ASCII,
)
_LOOPBACK = re.compile(r"localhost|127(?:\.[0-9]{1,3}){3}|\[::1\]", re.IGNORECASE)


def _origin_list(env: Mapping[str, str], name: str, *, allow_http: bool) -> tuple[str, ...]:
    """The origins allowed to frame the widget. `allow_http`: plain http:// CRM origins are
    accepted (demo mode, WIDGET_ALLOW_INSECURE=1); loopback ones always are, as no network
    attacker can get between a browser and its own machine."""
    # Split on ASCII spaces and tabs only: any other blank (a no-break space, a line break
    # inside the value) stays in its item, which then fails the pattern.
    items = re.split(r"[ \t]+", env.get(name, "").strip(" \t\r\n"))
    if items == [""]:
        return ("'self'",)
    origins = []
    for item in items:
        if item in ("'self'", "'none'"):
            origins.append(item)
            continue
        match = _ORIGIN.fullmatch(item)
        if match is None or (match["port"] and not 0 < int(match["port"]) < 65536):
            raise ConfigError(
                f"{name}: {item!r} is not an origin like https://crm.example.com or 'self' "
                "(scheme://host[:port], no path, origins separated by spaces)"
            )
        scheme, host = match["scheme"].lower(), match["host"].lower()
        if scheme == "http" and not allow_http and not _LOOPBACK.fullmatch(host):
            raise ConfigError(
                f"{name}: {item!r} is plain http://: anyone on the network could frame the "
                "widget from it and read its events; use https://, or set WIDGET_ALLOW_INSECURE=1"
            )
        # As browsers write an origin (lower case, no default port), or postMessage's exact
        # match against the parent's origin would silently fail.
        default = {"http": "80", "https": "443"}[scheme]
        port = (
            f":{int(match['port'])}" if match["port"] and int(match["port"]) != int(default) else ""
        )
        origins.append(f"{scheme}://{host}{port}")
    return tuple(origins)


def _language(env: Mapping[str, str]) -> str:
    value = env.get("WIDGET_DEFAULT_LANGUAGE", "").strip().lower() or "en"
    if not re.fullmatch(r"[a-z]{2,3}", value):
        # Whether a catalogue exists is checked when the app loads them (webapp.i18n).
        raise ConfigError(f"WIDGET_DEFAULT_LANGUAGE: a language code like en or hi, got {value!r}")
    return value


def _metrics_token(env: Mapping[str, str]) -> str:
    value = env.get("WIDGET_METRICS_TOKEN", "")
    if not value:
        return ""
    if len(value) < 16:
        raise ConfigError("WIDGET_METRICS_TOKEN: too short, use at least 16 random characters")
    if not all("!" <= c <= "~" for c in value):
        # It travels in an Authorization header: printable ASCII, no spaces.
        raise ConfigError("WIDGET_METRICS_TOKEN: letters, digits and punctuation only")
    return value


def _events_token(env: Mapping[str, str], demo: bool) -> str:
    value = env.get("WIDGET_EVENTS_TOKEN", "")
    if not value:
        # Demo mode only: a per-process token, like its other secrets.
        return secrets.token_urlsafe(32) if demo else ""
    if len(value) < EVENTS_TOKEN_MIN:
        raise ConfigError(
            f"WIDGET_EVENTS_TOKEN: too short, use at least {EVENTS_TOKEN_MIN} random characters"
        )
    if not re.fullmatch(r"[A-Za-z0-9._~-]+", value):
        # A segment of the URLs registered with CloudAgent: only characters no proxy or
        # client escapes or mangles (RFC 3986's unreserved ones).
        raise ConfigError(
            "WIDGET_EVENTS_TOKEN: letters, digits, '-', '_', '.' and '~' only (it goes in a "
            "URL path)"
        )
    return value


def _events_api(env: Mapping[str, str], *, allow_http: bool) -> str:
    url = env.get("WIDGET_CLOUDAGENT_EVENTS_API", "").strip() or DEFAULT_EVENTS_API
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigError(f"WIDGET_CLOUDAGENT_EVENTS_API: not an http(s) base URL: {url!r}")
    if parts.scheme == "http" and not allow_http:
        raise ConfigError(
            "WIDGET_CLOUDAGENT_EVENTS_API: http:// sends the account's API key unencrypted; "
            "use https://, or set WIDGET_ALLOW_INSECURE=1"
        )
    return url.rstrip("/")


def _whole_number(env: Mapping[str, str], name: str, default: int, *, low: int, high: int) -> int:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not low <= int(raw) <= high:
        raise ConfigError(f"{name}: a whole number from {low} to {high}, got {raw!r}")
    return int(raw)


def _networks(env: Mapping[str, str], name: str) -> tuple[IPNetwork, ...]:
    """Comma- or space-separated IP addresses and CIDR networks (an address: a /32 or /128)."""
    networks = []
    for item in re.split(r"[\s,]+", env.get(name, "").strip()):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=False))
        except ValueError:
            raise ConfigError(
                f"{name}: {item!r} is not an IP address or network like 10.0.0.5 or 10.0.0.0/8"
            ) from None
    return tuple(networks)


def redact_url(url: str) -> str:
    """`url` with any password (in its user part or its query) replaced by ***, for logs and
    error messages."""
    parts = urlsplit(url)
    if parts.password is not None:
        host = parts.netloc.rpartition("@")[2]
        parts = parts._replace(netloc=f"{parts.username or ''}:***@{host}")
    if parts.query:
        query = [
            (k, "***" if k.lower() in ("password", "passwd", "pwd") else v)
            for k, v in parse_qsl(parts.query, keep_blank_values=True)
        ]
        parts = parts._replace(query=urlencode(query, safe="*"))
    return urlunsplit(parts)


def _redis_url(env: Mapping[str, str]) -> str:
    raw = env.get("WIDGET_REDIS_URL", "").strip()
    if not raw:
        return ""
    try:
        parts = urlsplit(raw)
        parts.port  # noqa: B018  (raises on a malformed port)
    except ValueError:
        raise ConfigError("WIDGET_REDIS_URL: malformed URL") from None
    if parts.scheme in ("redis", "rediss") and parts.hostname:
        return raw
    if parts.scheme == "unix" and parts.path:
        return raw
    raise ConfigError(
        f"WIDGET_REDIS_URL: expected redis://[:password@]host:port/db, rediss://... or "
        f"unix:///path, got {redact_url(raw)!r}"
    )


def _database_url(env: Mapping[str, str]) -> str:
    raw = env.get("WIDGET_DATABASE_URL", "").strip()
    if not raw:
        return ""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        raise ConfigError(
            "WIDGET_DATABASE_URL: not a database URL like postgresql+psycopg://user@host/db"
        ) from None
    if url.drivername in ("postgresql", "postgres", "postgresql+psycopg"):
        # psycopg 3 is the driver this service ships with: plain postgresql:// means it too.
        url = url.set(drivername="postgresql+psycopg")
    elif url.drivername not in ("sqlite", "sqlite+pysqlite"):
        raise ConfigError(
            f"WIDGET_DATABASE_URL: PostgreSQL (postgresql+psycopg://) or SQLite only, "
            f"got {url.drivername!r}"
        )
    return url.render_as_string(hide_password=False)


def _instance_name(env: Mapping[str, str]) -> str:
    import socket

    name = env.get("WIDGET_INSTANCE_NAME", "").strip() or socket.gethostname()
    if len(name) > 64 or not name.isprintable():
        raise ConfigError("WIDGET_INSTANCE_NAME: at most 64 printable characters")
    return name


def _name_list(env: Mapping[str, str], name: str) -> tuple[str, ...] | None:
    """A comma-separated list of distinct, short names; None when the variable is unset."""
    raw = env.get(name)
    if raw is None or not raw.strip():
        return None
    names = tuple(item.strip() for item in raw.split(",") if item.strip())
    if len(set(names)) != len(names) or any(len(n) > 100 for n in names):
        raise ConfigError(f"{name}: names must be distinct and short")
    return names


def _timezone(env: Mapping[str, str]) -> str:
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    raw = env.get("WIDGET_CLOUDAGENT_TIMEZONE", "").strip() or DEFAULT_TIMEZONE
    try:
        ZoneInfo(raw)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"WIDGET_CLOUDAGENT_TIMEZONE: {raw!r} is not a time zone name like Asia/Kolkata"
        ) from None
    return raw


def _demo_host(env: Mapping[str, str], demo: bool) -> tuple[str, ...]:
    """Demo mode serves its CRM page on http://localhost:<port>, a different site from the
    widget's 127.0.0.1: allow it to frame the widget unless the operator chose the list."""
    if not demo or env.get("WIDGET_FRAME_ANCESTORS", "").strip():
        return ()
    port = env.get("WIDGET_BIND", "127.0.0.1:8000").rpartition(":")[2]
    return (f"http://localhost:{port}",) if port.isdigit() else ()


def load_settings(
    env: Mapping[str, str] | None = None, *, instance_path: str = "instance"
) -> Settings:
    """Read and validate the WIDGET_* variables; raise ConfigError naming the first bad one."""
    env = os.environ if env is None else env
    username = env.get("WIDGET_CLOUDAGENT_USERNAME", "").strip()
    demo = not username
    production = [name for name in PRODUCTION_ONLY if env.get(name, "").strip()]
    if demo and production:
        # A forgotten or misspelt user name must not turn a production host into a demo.
        raise ConfigError(
            f"WIDGET_CLOUDAGENT_USERNAME: required, since {production[0]} is set "
            "(demo mode runs only with no CloudAgent, secret or store settings at all)"
        )

    api_key = env.get("WIDGET_CLOUDAGENT_API_KEY", "").strip()
    if demo:
        username, api_key = DEMO_USERNAME, DEMO_API_KEY
    elif not api_key:
        raise ConfigError(
            "WIDGET_CLOUDAGENT_API_KEY: required when WIDGET_CLOUDAGENT_USERNAME is set"
        )
    elif not (api_key.isascii() and api_key.isprintable()):
        # It goes in a header: requests would refuse it on every call with an error that
        # quotes the value, which would then reach the logs. Refused here, never shown.
        raise ConfigError(
            "WIDGET_CLOUDAGENT_API_KEY: holds a character an HTTP header cannot carry "
            "(a line break, a control character or a non-ASCII letter); the value is not shown"
        )

    def secret(name: str) -> str:
        value = env.get(name, "")
        if value:
            if len(value) < 16:
                raise ConfigError(f"{name}: too short, use at least 16 random characters")
            return value
        if demo:
            # Demo mode only: a per-process secret, so nothing guessable protects anything.
            return secrets.token_urlsafe(32)
        raise ConfigError(f"{name}: required (a long random string)")

    signing = env.get("WIDGET_LAUNCH_SIGNING", "on").strip().lower()
    if signing not in ("on", "off"):
        raise ConfigError(f"WIDGET_LAUNCH_SIGNING: 'on' or 'off', got {signing!r}")

    url = env.get("WIDGET_CLOUDAGENT_URL", "").strip() or DEFAULT_CLOUDAGENT_URL
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.query:
        raise ConfigError(f"WIDGET_CLOUDAGENT_URL: not an http(s) base URL: {url!r}")

    # What would expose the account or the panels: refused outside demo mode unless said.
    insecure = env.get("WIDGET_ALLOW_INSECURE", "").strip()
    if insecure not in ("", "0", "1"):
        raise ConfigError(f"WIDGET_ALLOW_INSECURE: '1' or unset, got {insecure!r}")
    allow_insecure = insecure == "1"
    if not demo and not allow_insecure:
        if signing == "off":
            raise ConfigError(
                "WIDGET_LAUNCH_SIGNING: 'off' lets anyone open a panel for any call; "
                "refused unless WIDGET_ALLOW_INSECURE=1"
            )
        if parts.scheme == "http":
            raise ConfigError(
                "WIDGET_CLOUDAGENT_URL: http:// sends the account's API key and tokens "
                "unencrypted; use https://, or set WIDGET_ALLOW_INSECURE=1"
            )

    auth = env.get("WIDGET_CLOUDAGENT_AUTH", "token").strip().lower() or "token"
    if auth not in ("token", "apikey"):
        raise ConfigError(f"WIDGET_CLOUDAGENT_AUTH: 'token' or 'apikey', got {auth!r}")

    reasons = _name_list(env, "WIDGET_PAUSE_REASONS") or DEFAULT_PAUSE_REASONS

    data_dir = Path(env.get("WIDGET_DATA_DIR", "").strip() or instance_path)

    return Settings(
        secret_key=secret("WIDGET_SECRET_KEY"),
        launch_secret=secret("WIDGET_LAUNCH_SECRET"),
        launch_max_age=int(_number(env, "WIDGET_LAUNCH_MAX_AGE", 600, low=10, high=7 * 24 * 3600)),
        context_max_age=int(
            _number(env, "WIDGET_CONTEXT_MAX_AGE", 4 * 3600, low=60, high=24 * 3600)
        ),
        launch_signing=signing == "on",
        cloudagent_url=url.rstrip("/"),
        cloudagent_username=username,
        cloudagent_api_key=api_key,
        cloudagent_auth=auth,
        frame_ancestors=_origin_list(
            env, "WIDGET_FRAME_ANCESTORS", allow_http=demo or allow_insecure
        )
        + _demo_host(env, demo),
        pause_reasons=reasons,
        data_dir=data_dir,
        connect_timeout=_number(env, "WIDGET_CLOUDAGENT_CONNECT_TIMEOUT", 3.05, low=0.1, high=60),
        read_timeout=_number(env, "WIDGET_CLOUDAGENT_READ_TIMEOUT", 10, low=0.1, high=120),
        dispositions_ttl=_number(env, "WIDGET_DISPOSITIONS_TTL", 300, low=0, high=86400),
        saves_per_minute=int(_number(env, "WIDGET_SAVES_PER_MINUTE", 30, low=1, high=10000)),
        demo=demo,
        redis_url=_redis_url(env),
        database_url=_database_url(env),
        instance_name=_instance_name(env),
        callback_dispositions=_name_list(env, "WIDGET_CALLBACK_DISPOSITIONS") or (),
        cloudagent_timezone=_timezone(env),
        allow_insecure=allow_insecure,
        metrics_token=_metrics_token(env),
        default_language=_language(env),
        trusted_proxies=_networks(env, "WIDGET_TRUSTED_PROXIES"),
        audit_retention_days=_whole_number(
            env, "WIDGET_AUDIT_RETENTION_DAYS", 400, low=1, high=36500
        ),
        events_token=_events_token(env, demo),
        cloudagent_events_api=_events_api(env, allow_http=demo or allow_insecure),
        wrapup_seconds=(
            _whole_number(env, "WIDGET_WRAPUP_SECONDS", 0, low=0, high=3600)
            if env.get("WIDGET_WRAPUP_SECONDS", "").strip()
            else None
        ),
    )
