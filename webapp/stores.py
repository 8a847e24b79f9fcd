"""The service's own state, chosen once at start-up: one host, or several instances.

| state | one host (default) | several instances |
| --- | --- | --- |
| CloudAgent token, its lock, mint budget | SQLite `tokens.sqlite3` | Redis (WIDGET_REDIS_URL) |
| the dispositions cache | process memory | Redis, a few seconds in memory |
| per-agent save counts | the audit log's rows | Redis |
| the audit log | SQLite `audit.sqlite3` | PostgreSQL (WIDGET_DATABASE_URL) |

The SQLite files live under `WIDGET_DATA_DIR`. Each piece has one interface (TokenStore,
RateLimiter, the cache's get(), AuditLog on SQLAlchemy) and the view code never knows which.
"""

from __future__ import annotations

import logging

import redis
from flask import Flask
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from .audit import JOURNAL_NAME, AuditLog, SchemaError, prepare_database, sqlite_url
from .cloudagent import (
    LIST_RETRY_AFTER,
    CloudAgentClient,
    DispositionCache,
    RedisDispositionCache,
    RedisTokenStore,
    SqliteTokenStore,
    TokenStore,
    account_key,
)
from .config import ConfigError, Settings, redact_url
from .ratelimit import AuditRateLimiter, RedisRateLimiter

log = logging.getLogger("webapp")

# Seconds an instance trusts its in-memory copy of a shared disposition list before looking
# at Redis again.
LOCAL_LIST_TTL = 5.0


def redis_client(url: str) -> redis.Redis:
    """A client with short timeouts and one quick reconnect: when Redis is away, a save is
    answered in about a second instead of waiting on redis-py's default ten retries."""
    return redis.Redis.from_url(
        url,
        socket_connect_timeout=1.0,
        socket_timeout=2.0,
        socket_keepalive=True,
        health_check_interval=15,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
        client_name="disposition-widget",
    )


def shared_redis(app: Flask, settings: Settings) -> redis.Redis | None:
    """This process's Redis client, made once, or None on a single host."""
    if not settings.redis_url:
        return None
    client = app.extensions.get("redis")
    if client is None:
        client = app.extensions["redis"] = redis_client(settings.redis_url)
        log.info("shared state in Redis at %s", redact_url(settings.redis_url))
    return client


def token_store(app: Flask, settings: Settings) -> TokenStore:
    client = shared_redis(app, settings)
    counted = app.extensions.get("metrics")
    on_conflict = counted.token_conflict if counted is not None else None
    if client is None:
        return SqliteTokenStore(settings.data_dir / "tokens.sqlite3", on_conflict=on_conflict)
    # The lock outlives the longest mint call, so it is never taken from a live minter.
    return RedisTokenStore(
        client,
        lock_timeout=settings.connect_timeout + settings.read_timeout + 10,
        on_conflict=on_conflict,
    )


def _audit_url(settings: Settings) -> str:
    return settings.database_url or sqlite_url(settings.data_dir)


def _schema_error(settings: Settings, error: SchemaError) -> ConfigError:
    variable = "WIDGET_DATABASE_URL" if settings.database_url else "WIDGET_DATA_DIR"
    return ConfigError(f"{variable}: {error}")


def check_audit_database(settings: Settings) -> None:
    """An instance's first start: the audit database answers (within 10 s) and has this
    release's schema; ConfigError naming the variable otherwise."""
    try:
        prepare_database(_audit_url(settings))
    except SchemaError as error:
        raise _schema_error(settings, error) from error


def longest_save(settings: Settings) -> float:
    """Seconds past which an open audit row belonged to a worker that died: a save makes at
    most four CloudAgent calls (a Set, a mint, the Set again, with a mint between), plus the
    audit database's waits. A save that ends later still writes its real outcome."""
    return 4 * (settings.connect_timeout + settings.read_timeout) + 30


def init_app(
    app: Flask, settings: Settings, cloudagent: CloudAgentClient, *, strict: bool = True
) -> None:
    """Make the audit log, the save limiter and the dispositions cache, and the readiness
    checks. `strict`: an audit database that does not answer stops start-up; otherwise (a
    worker of an instance whose first start found it) the app serves without it meanwhile."""
    client = shared_redis(app, settings)
    counted = app.extensions.get("metrics")
    on_result = counted.cache_result if counted is not None else None
    try:
        app.extensions["audit"] = AuditLog(
            _audit_url(settings),
            instance=settings.instance_name,
            journal=settings.data_dir / JOURNAL_NAME,
            strict=strict,
            longest_save=longest_save(settings),
        )
    except SchemaError as error:
        raise _schema_error(settings, error) from error
    if settings.database_url:
        log.info("audit log in %s", app.extensions["audit"].where)
    if client is None:
        app.extensions["save_limiter"] = AuditRateLimiter(
            app.extensions["audit"], limit=settings.saves_per_minute, window=60
        )
        app.extensions["dispositions"] = DispositionCache(
            cloudagent.fetch_dispositions,
            account=cloudagent.account,
            ttl=settings.dispositions_ttl,
            on_result=on_result,
        )
    else:
        app.extensions["save_limiter"] = RedisRateLimiter(
            client,
            limit=settings.saves_per_minute,
            window=60,
            prefix=f"widget:rate:{account_key(cloudagent.account)}:",
        )
        app.extensions["dispositions"] = RedisDispositionCache(
            cloudagent.fetch_dispositions,
            account=cloudagent.account,
            redis=client,
            ttl=settings.dispositions_ttl,
            local_ttl=LOCAL_LIST_TTL,
            refresh_lock=max(
                LIST_RETRY_AFTER, settings.connect_timeout + settings.read_timeout + 5
            ),
            on_result=on_result,
        )
    readiness = {
        "audit_log": app.extensions["audit"].ping,
        "rate_limits": app.extensions["save_limiter"].ping,
    }
    if cloudagent.token_store is not None:
        readiness["token_store"] = cloudagent.token_store.ping
    if client is not None:
        readiness["dispositions_cache"] = app.extensions["dispositions"].ping
    app.extensions["readiness"] = readiness
