"""Real Redis and PostgreSQL servers for the several-instances tests: Debian's `redis-server`
and `postgresql`, started on free loopback ports in temporary folders and stopped after.

Missing binaries skip these tests loudly on a developer's machine and fail them under
CI=true (.ci/run installs the packages).
"""

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import pytest

from tests.helpers import free_port


def _missing(what):
    if os.environ.get("CI"):
        pytest.fail(f"{what}: required under CI (.ci/run installs it)")
    pytest.skip(f"SHARED-STATE TESTS SKIPPED: {what}")


def _wait(check, what, timeout, proc, log_path):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        with contextlib.suppress(Exception):
            if check():
                return
        time.sleep(0.05)
    output = Path(log_path).read_text(errors="replace")[-3000:]
    pytest.fail(f"{what} did not start (exit {proc.poll()}):\n{output}")


# -- Redis ----------------------------------------------------------------------------------

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    """redis-server on a loopback port, with no persistence: a restart loses everything,
    which is the worst case the service must survive."""

    def __init__(self):
        self.dir = Path(tempfile.mkdtemp(prefix="widget-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None
        self.start()

    def start(self):
        log_path = self.dir / "redis.log"
        self._log = log_path.open("ab")
        self.proc = subprocess.Popen(
            [
                REDIS_SERVER,
                "--port", str(self.port),
                "--bind", "127.0.0.1",
                "--dir", str(self.dir),
                "--save", "",
                "--appendonly", "no",
                "--daemonize", "no",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait(lambda: self.client().ping(), "redis-server", 60, self.proc, log_path)

    def client(self):
        import redis

        return redis.Redis.from_url(self.url, socket_connect_timeout=1, socket_timeout=2)

    def kill(self):
        """Gone at once, as in a crash: no save, no goodbye to the clients."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self._log.close()

    def restart(self):
        self.kill()
        self.start()

    def stop(self):
        self.kill()
        shutil.rmtree(self.dir, ignore_errors=True)


def _running_redis():
    if not os.access(REDIS_SERVER, os.X_OK):
        _missing(f"no {REDIS_SERVER} (Debian: apt-get install redis-server)")
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


@pytest.fixture
def redis_url(redis_server):
    """The session's Redis, emptied for each test."""
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def down_redis_url():
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


# -- PostgreSQL -----------------------------------------------------------------------------


def _pg_bindir():
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=_version)
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _version(path):
    part = Path(path).parts[-3]
    return int(part) if part.isdigit() else 0


class PostgresServer:
    """A throw-away cluster: initdb in a temporary folder, trust auth on loopback, no fsync.
    PostgreSQL refuses to run as root: as root it runs as the `postgres` user."""

    def __init__(self, bindir):
        self.bindir = bindir
        self.dir = Path(tempfile.mkdtemp(prefix="widget-pg-"))
        self.port = free_port()
        self.as_user = []
        if os.geteuid() == 0:
            import pwd

            try:
                account = pwd.getpwnam("postgres")
            except KeyError:
                _missing("running as root and no 'postgres' user to run PostgreSQL as")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            # setpriv execs postgres itself (no parent in between), so signals reach it.
            self.as_user = [
                "setpriv",
                f"--reuid={account.pw_uid}",
                f"--regid={account.pw_gid}",
                "--clear-groups",
                "--",
            ]
        data = self.dir / "data"
        done = subprocess.run(
            [
                *self.as_user,
                str(bindir / "initdb"),
                "-D", str(data),
                "-U", "postgres",
                "--auth=trust",
                "-E", "UTF8",
                "--no-sync",
                "--no-instructions",
            ],
            capture_output=True,
            text=True,
            check=False,
        )  # fmt: skip
        if done.returncode != 0:
            pytest.fail(f"initdb failed:\n{done.stdout}\n{done.stderr}")
        self.proc = None
        self.start()

    def start(self):
        log_path = self.dir / "postgres.log"
        self._log = open(log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                *self.as_user,
                str(self.bindir / "postgres"),
                "-D", str(self.dir / "data"),
                "-k", str(self.dir),
                "-p", str(self.port),
                "-c", "listen_addresses=127.0.0.1",
                "-c", "fsync=off",
                "-c", "synchronous_commit=off",
                "-c", "full_page_writes=off",
                "-c", "max_connections=300",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        _wait(self._ready, "postgres", 120, self.proc, log_path)

    def url(self, database="postgres"):
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def connect(self, database="postgres"):
        import psycopg

        return psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={database}",
            autocommit=True,
            connect_timeout=3,
        )

    def _ready(self):
        with self.connect() as conn:
            conn.execute("SELECT 1")
        return True

    def create_database(self):
        name = f"widget_{uuid.uuid4().hex[:12]}"
        with self.connect() as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return name

    def block(self, database):
        """The database goes away: no new connections, every open one terminated."""
        with self.connect() as conn:
            conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                (database,),
            )

    def unblock(self, database):
        with self.connect() as conn:
            conn.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    def stop(self):
        if self.proc and self.proc.poll() is None:
            # SIGINT: postgres' fast shutdown.
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server():
    bindir = _pg_bindir()
    if bindir is None or not (bindir / "postgres").exists():
        _missing("no PostgreSQL server binaries (Debian: apt-get install postgresql)")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _missing("psycopg is not installed (make test installs it)")
    server = PostgresServer(bindir)
    yield server
    server.stop()


@pytest.fixture
def pg_database(postgres_server):
    """A new, empty database for one test: its name."""
    return postgres_server.create_database()


@pytest.fixture
def pg_url(postgres_server, pg_database):
    return postgres_server.url(pg_database)
