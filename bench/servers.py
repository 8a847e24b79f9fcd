"""Throw-away Redis and PostgreSQL servers on loopback ports for the fault drill, as
tests/shared/conftest.py starts them: Debian's binaries, temporary folders, no persistence
worth the name (fsync off). PostgreSQL runs as `postgres` when this runs as root."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path

from .common import free_port


class Missing(Exception):  # noqa: N818 (a reason to skip, not a fault)
    """A server binary the drill needs is not installed."""


def _wait(ready, what: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            if ready():
                return
        except Exception:  # noqa: S110 - not up yet
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} did not start:\n{log.read_text(errors='replace')[-2000:]}")


class Redis:
    def __init__(self) -> None:
        binary = shutil.which("redis-server") or "/usr/bin/redis-server"
        if not os.access(binary, os.X_OK):
            raise Missing("redis-server (Debian: apt-get install redis-server)")
        self.dir = Path(tempfile.mkdtemp(prefix="drill-redis-"))
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        log = self.dir / "redis.log"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--dir", str(self.dir),
             "--save", "", "--appendonly", "no"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        import redis

        client = redis.Redis(port=self.port, socket_connect_timeout=1)
        _wait(client.ping, "redis-server", self.proc, log)
        client.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self._log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Postgres:
    """initdb in a temporary folder, trust auth on loopback; stop() and start() keep the data,
    as an operator's restart would."""

    def __init__(self) -> None:
        found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not found:
            raise Missing("PostgreSQL server binaries (Debian: apt-get install postgresql)")
        self.bindir = Path(found[-1]).parent
        self.dir = Path(tempfile.mkdtemp(prefix="drill-pg-"))
        self.port = free_port()
        self.as_user: list[str] = []
        if os.geteuid() == 0:
            import pwd

            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self.as_user = ["setpriv", f"--reuid={account.pw_uid}",
                            f"--regid={account.pw_gid}", "--clear-groups", "--"]  # fmt: skip
        subprocess.run(  # noqa: S603
            [*self.as_user, str(self.bindir / "initdb"), "-D", str(self.dir / "data"),
             "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync", "--no-instructions"],
            capture_output=True,
            check=True,
        )  # fmt: skip
        self.proc: subprocess.Popen | None = None
        self.start()
        with self.connect() as conn:
            conn.execute("CREATE DATABASE widget")
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/widget"

    def connect(self, database: str = "postgres"):
        import psycopg

        return psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname={database}",
            autocommit=True,
            connect_timeout=3,
        )

    def start(self) -> None:
        log = self.dir / "postgres.log"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(  # noqa: S603
            [*self.as_user, str(self.bindir / "postgres"), "-D", str(self.dir / "data"),
             "-k", str(self.dir), "-p", str(self.port), "-c", "listen_addresses=127.0.0.1",
             "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "max_connections=300"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

        def ready() -> bool:
            with self.connect() as conn:
                conn.execute("SELECT 1")
            return True

        _wait(ready, "postgres", self.proc, log, timeout=120)

    def stop(self) -> None:
        """Fast shutdown: every session ended at once, as in an outage."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)
