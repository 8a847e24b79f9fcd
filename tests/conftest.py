"""Fixtures for every test: CloudAgent as the simulator on a loopback port, a client of it,
the app with the tests' settings, and helpers bound to them (tests/helpers.py holds the
plain functions and classes behind them)."""

import logging
import os

import pytest

from tests.helpers import (
    DID,
    READ_TIMEOUT,
    REDIS_SERVER,
    Clock,
    GunicornServer,
    Panels,
    PostgresServer,
    RedisServer,
    pg_bindir,
    server_env,
    shared_state_missing,
    widget_env,
)
from webapp import create_app
from webapp.cloudagent import CloudAgentClient, SqliteTokenStore
from webapp.simulator import Simulator, start_server


@pytest.fixture
def simulator():
    return Simulator()


@pytest.fixture
def upstream(simulator):
    """The simulator served over real HTTP on a loopback port."""
    running = start_server(simulator)
    yield running
    running.stop()


@pytest.fixture
def timed(upstream, tmp_path):
    """A client and the simulator on one test clock: (simulator, client, clock)."""
    clock = Clock()
    upstream.simulator.clock = clock
    client = CloudAgentClient(
        base_url=upstream.url,
        username="demo",
        api_key="demo-api-key",
        token_store=SqliteTokenStore(tmp_path / "tokens.sqlite3", clock=clock),
        clock=clock,
    )
    return upstream.simulator, client, clock


@pytest.fixture
def token_store(tmp_path):
    return SqliteTokenStore(tmp_path / "tokens.sqlite3")


@pytest.fixture
def make_client(upstream, token_store):
    """A CloudAgent client of the simulator: make_client(**options) overrides its options."""

    def make(**overrides):
        options = dict(
            base_url=upstream.url,
            username="demo",
            api_key="demo-api-key",
            token_store=token_store,
            connect_timeout=30,
            read_timeout=READ_TIMEOUT,
        )
        return CloudAgentClient(**(options | overrides))

    return make


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def call(simulator):
    """A live call of agent1's on DID, in the simulator."""
    return simulator.start_call("agent1", DID)


@pytest.fixture
def make_app(upstream, tmp_path):
    """make_app(**WIDGET_settings): the app with the tests' settings changed by these."""

    def make(**settings):
        return create_app(widget_env(upstream.url, tmp_path, **settings))

    return make


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def web(app):
    """The app's test client: what a browser would send, without a browser."""
    return app.test_client()


@pytest.fixture
def panels(request):
    """Opens panels by signed launch links: panels.open(ucid, agent=..., did=...) -> Panel, on
    the `web` client (made only if used); panels.on(client).open(...) on another app's."""
    return Panels(lambda: request.getfixturevalue("web"))


@pytest.fixture(scope="module")
def production_server(tmp_path_factory):
    """production_server(upstream_url, **WIDGET_settings): `gunicorn -c gunicorn.conf.py
    wsgi:app` in a subprocess, started and waited for; each stopped after the module."""
    started = []

    def start(upstream_url, *, name="gunicorn", workers=4, probe="/healthz", data_dir=None,
              **settings):  # fmt: skip
        data_dir = data_dir or tmp_path_factory.mktemp(name)
        env = server_env(upstream_url, data_dir, **settings)
        server = GunicornServer(data_dir, env, name=name, workers=workers, probe=probe)
        started.append(server)
        server.wait_ready()
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def retry_lists_at_once(monkeypatch):
    """A list that failed to load is asked for again at once, not after its back-off: for
    tests of Try again, which do not wait out the seconds an agent would."""
    from webapp.cloudagent import cache, client

    monkeypatch.setattr(cache, "FAILED_BACKOFF", 0.0)
    monkeypatch.setattr(client, "UNREACHABLE_HOLD", 0.0)


@pytest.fixture(scope="module")
def quiet_werkzeug():
    """The in-process simulator's werkzeug access log: thousands of lines, no information."""
    logger = logging.getLogger("werkzeug")
    level = logger.level
    logger.setLevel(logging.WARNING)
    yield
    logger.setLevel(level)


# -- real Redis and PostgreSQL (tests/shared, and the browser tests across two instances) ----


def _running_redis():
    if not os.access(REDIS_SERVER, os.X_OK):
        shared_state_missing(f"no {REDIS_SERVER} (Debian: apt-get install redis-server)")
    server = RedisServer()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_server():
    yield from _running_redis()


@pytest.fixture(scope="module")
def own_redis_server():
    """A Redis server of the module's own, which its tests may kill and start again."""
    yield from _running_redis()


@pytest.fixture(scope="session")
def postgres_server():
    bindir = pg_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        shared_state_missing("no PostgreSQL server binaries (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        shared_state_missing("psycopg is not installed (make test installs it)")
    server = PostgresServer(bindir)
    yield server
    server.stop()
