"""The benchmark's server processes: start one with its output in a log file, wait until a
gunicorn server answers with all its workers forked, stop it; and what gunicorn.conf.py
resolves to under a given environment."""

from __future__ import annotations

import os
import runpy
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from .common import children

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
GUNICORN = str(Path(PY).parent / "gunicorn")


class Service:
    """One server process, run from the repository's root, its output in `log`."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], log: Path) -> None:
        self.name = name
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603
            command, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )

    def tail(self, lines: int = 30) -> str:
        text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        return f"--- {self.name} output ({self.log_path}) ---\n" + "\n".join(text)

    def alive_or_die(self) -> None:
        if self.proc.poll() is not None:
            sys.exit(f"bench: {self.name} exited with {self.proc.returncode}\n{self.tail()}")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=25)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self._log.close()


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET, error statuses included."""
    request = urllib.request.Request(url)  # noqa: S310 - loopback URLs we built
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_gunicorn(service: Service, url: str, workers: int, timeout: float = 60) -> list[int]:
    """The workers' pids, once `url` answers 200 and all `workers` have forked."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        service.alive_or_die()
        try:
            healthy = http_get(url, timeout=2)[0] == 200
        except OSError:
            healthy = False
        forked = children(service.proc.pid)
        if healthy and len(forked) >= workers:
            return forked
        time.sleep(0.1)
    sys.exit(f"bench: {service.name} not ready in {timeout:g} s\n{service.tail()}")


def gunicorn_config(env: dict[str, str]) -> dict:
    """What gunicorn.conf.py resolves to under `env` (it reads the environment when loaded)."""
    saved = dict(os.environ)
    try:
        os.environ.clear()
        os.environ.update(env)
        conf = runpy.run_path(str(ROOT / "gunicorn.conf.py"))
    finally:
        os.environ.clear()
        os.environ.update(saved)
    keys = ("worker_class", "workers", "threads", "keepalive", "timeout", "preload_app")
    return {key: conf.get(key) for key in keys}
