"""The production server for tests: `gunicorn -c gunicorn.conf.py wsgi:app` in a subprocess,
started on a free loopback port, waited for, and read back (condensed) when a test fails."""

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests

from .conftest import widget_env

ROOT = Path(__file__).resolve().parent.parent
GUNICORN = ROOT / ".venv" / "bin" / "gunicorn"


def server_env(upstream_url, data_dir, **settings):
    """A production server's environment for the tests: this process's without its WIDGET_*
    variables, the tests' widget settings for `upstream_url`, then `settings`."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")}
    return env | widget_env(upstream_url, data_dir) | settings


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def children(pid):
    """Pids whose parent is `pid`, read from /proc (the app is not asked)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue  # gone meanwhile
        # The command name is in parentheses and may hold spaces: the ppid follows the last ')'.
        fields = stat[stat.rindex(")") + 2 :].split()
        if int(fields[1]) == pid:
            found.append(int(entry.name))
    return sorted(found)


class GunicornServer:
    """gunicorn serving wsgi:app as in production, with `env` (WIDGET_BIND is set here)."""

    def __init__(self, data_dir, env, *, name="gunicorn", workers=4, probe="/healthz"):
        data_dir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.expected_workers = workers
        self.probe = probe
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.env = env | {"WIDGET_BIND": f"127.0.0.1:{port}"}
        # A file, not a pipe: nobody reads while the test runs, and a full pipe would block.
        self.log_path = data_dir / "gunicorn.log"
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            [str(GUNICORN), "-c", "gunicorn.conf.py", "wsgi:app"],
            cwd=ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        self.workers = []

    def log(self, lines=40):
        """The server's output for a failure message, condensed: gunicorn's own lines, the
        service's warnings and errors, its mints and any 5xx, repeats counted, not the
        thousands of per-request INFO lines."""
        every = self.log_path.read_text(errors="replace").splitlines()
        counts = {}
        for line in every:
            try:
                record = json.loads(line)
            except ValueError:
                key = line  # gunicorn's own, timestamped
            else:
                message = str(record.get("message"))
                if record.get("level") == "INFO" and not (
                    message.startswith("cloudagent: minted")
                    or (message == "request" and int(record.get("status", 0)) >= 500)
                ):
                    continue
                if message == "request":
                    message = json.dumps(record)
                key = f"{record.get('level')} {record.get('logger')}: {message}"
            counts[key] = counts.get(key, 0) + 1
        shown = [f"{n} x {key}" if n > 1 else key for key, n in counts.items()][-lines:]
        return f"{self.name} output ({len(every)} lines), condensed:\n" + "\n".join(shown)

    def wait_ready(self, timeout=30.0):
        """Until the probe answers 200 and every worker has forked."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                pytest.fail(
                    f"{self.name} exited with {self.proc.returncode} during start-up:\n{self.log()}"
                )
            workers = children(self.proc.pid)
            try:
                ready = requests.get(self.url + self.probe, timeout=2).status_code == 200
            except requests.RequestException:
                ready = False
            # The probe answers once one worker is up; wait for all of them to have forked.
            if ready and len(workers) >= self.expected_workers:
                self.workers = workers
                return
            time.sleep(0.1)
        pytest.fail(
            f"{self.name} not ready within {timeout:g} s (workers {children(self.proc.pid)}, "
            f"{self.probe} failing or fewer than {self.expected_workers} workers):\n{self.log()}"
        )

    def check_workers_unchanged(self):
        """No worker died, timed out or was replaced while the test ran."""
        assert self.proc.poll() is None, f"{self.name} exited:\n{self.log()}"
        assert children(self.proc.pid) == self.workers, (
            f"worker pids changed from {self.workers} to {children(self.proc.pid)}:\n{self.log()}"
        )

    def stop(self):
        try:
            if self.proc.poll() is None:
                self.proc.send_signal(signal.SIGTERM)
                try:
                    self.proc.wait(timeout=25)
                except subprocess.TimeoutExpired:
                    self.proc.kill()
                    self.proc.wait(timeout=10)
        finally:
            self._log.close()
