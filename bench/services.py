"""The benchmark's server processes: start one with its output in a log file, wait until a
gunicorn server answers with all its workers forked, stop it; what gunicorn.conf.py resolves
to under a given environment; and the set every measurement runs against (`start_services`:
the simulator, the widget and the bare Flask hello app, one gunicorn config)."""

from __future__ import annotations

import json
import os
import runpy
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from .common import children, free_port, launch_path

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
GUNICORN = str(Path(PY).parent / "gunicorn")


class Service:
    """One server process, run from the repository's root (or `cwd`), its output in `log`."""

    def __init__(
        self, name: str, command: list[str], env: dict[str, str], log: Path, cwd: Path = ROOT
    ) -> None:
        self.name = name
        self.log_path = log
        self._log = log.open("wb")
        self.proc = subprocess.Popen(  # noqa: S603
            command, cwd=cwd, env=env, stdout=self._log, stderr=subprocess.STDOUT
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


# The only WIDGET_* variables taken from the caller's environment: the server's shape and the
# shared stores (to bench those set-ups; give them fresh databases). The rest are the bench's.
PASS_THROUGH = (
    "WIDGET_WORKER_CLASS",
    "WIDGET_WORKERS",
    "WIDGET_THREADS",
    "WIDGET_DATABASE_URL",
    "WIDGET_REDIS_URL",
)


def source_tree() -> dict:
    """The commit measured, and whether the working tree differed from it."""

    def git(*args: str) -> str:
        done = subprocess.run(  # noqa: S603
            ["git", *args],  # noqa: S607
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=False,
        )
        return done.stdout.rstrip("\n")

    changed = [line[3:] for line in git("status", "--porcelain").splitlines()]
    return {
        "commit": git("rev-parse", "--short", "HEAD"),
        "subject": git("log", "-1", "--format=%s"),
        # The benchmark's own files aside (the Makefile holds its target too).
        "uncommitted": [
            path
            for path in changed
            if not path.startswith("bench/") and path != "docs/benchmarks.md"
        ],
    }


@dataclass
class Running:
    """The running services, and what the measuring steps need to know of them."""

    services: list[Service]  # every process started, the simulator first
    widget: Service
    hello: Service
    sim_info: dict  # what the simulator wrote at start: URL, accounts, live calls, dispositions
    sim_pids: list[int]  # its gunicorn's master and worker
    widget_url: str
    hello_url: str
    widget_workers: list[int]
    hello_workers: list[int]
    launch_secret: str
    config: dict  # gunicorn.conf.py as resolved, the same for the widget and hello
    passed_through: list[str]  # names only: a database URL may hold a password
    widget_env: dict[str, str]  # the widget's environment (secrets: never printed)

    @property
    def sim_url(self) -> str:
        return self.sim_info["url"]

    @property
    def calls(self) -> dict[str, dict]:
        """The widget account's live calls, by agent."""
        return self.sim_info["widget"]["calls"]

    @property
    def agents(self) -> list[str]:
        return sorted(self.calls)

    def panel_url(self, agent: str) -> str:
        """A freshly signed launch link to `agent`'s panel, as the CRM opens it."""
        call = self.calls[agent]
        return self.widget_url + launch_path(call["ucid"], agent, call["did"], self.launch_secret)

    def sim_stats(self) -> dict:
        """The simulator's counts so far: requests by kind, mints by account."""
        return json.loads(http_get(self.sim_url + "/sim/stats")[1])


def start_services(
    tmp: Path, services: list[Service], latency: float, agents: int, workers: int | None = None
) -> Running:
    """The simulator (`latency` seconds per answer, `agents` live calls per account), then the
    widget and the hello app under the same gunicorn config (`workers`: WIDGET_WORKERS for
    both, else the caller's or gunicorn.conf.py's); each is appended to `services` as soon as
    it starts. Returns once every worker has forked."""
    sim, sim_info = start_simulator(tmp, services, latency, agents)
    sim_pids = [sim.proc.pid, *children(sim.proc.pid)]  # gunicorn's master and worker

    # The widget and the hello app, the same gunicorn config.
    launch_secret = secrets.token_hex(24)
    widget_port, hello_port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")}
    base_env |= {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
    if workers is not None:
        base_env["WIDGET_WORKERS"] = str(workers)
    base_env |= {
        "WIDGET_CLOUDAGENT_URL": sim_info["url"],
        "WIDGET_CLOUDAGENT_USERNAME": sim_info["widget"]["username"],
        "WIDGET_CLOUDAGENT_API_KEY": sim_info["widget"]["api_key"],
        "WIDGET_SECRET_KEY": secrets.token_hex(24),
        "WIDGET_LAUNCH_SECRET": launch_secret,
        "WIDGET_DATA_DIR": str(tmp / "widget-data"),
        "WIDGET_SAVES_PER_MINUTE": "10000",
        "WIDGET_ALLOW_INSECURE": "1",  # the simulator on loopback speaks http://
        "WIDGET_TRUSTED_PROXIES": "127.0.0.1",  # the load tags its requests' ids
    }
    (tmp / "widget-data").mkdir()
    widget_env = base_env | {"WIDGET_BIND": f"127.0.0.1:{widget_port}"}
    hello_env = base_env | {"WIDGET_BIND": f"127.0.0.1:{hello_port}"}
    config = gunicorn_config(widget_env)
    if gunicorn_config(hello_env) != config:
        sys.exit("bench: the widget and hello servers would not get the same gunicorn config")
    widget = Service(
        "widget gunicorn",
        [GUNICORN, "-c", "gunicorn.conf.py", "wsgi:app"],
        widget_env,
        tmp / "widget.log",
    )
    hello = Service(
        "hello gunicorn",
        [GUNICORN, "-c", "gunicorn.conf.py", "bench.hello:app"],
        hello_env,
        tmp / "hello.log",
    )
    services += [widget, hello]
    widget_url = f"http://127.0.0.1:{widget_port}"
    hello_url = f"http://127.0.0.1:{hello_port}"
    widget_workers = wait_gunicorn(widget, widget_url + "/healthz", config["workers"])
    hello_workers = wait_gunicorn(hello, hello_url + "/hello", config["workers"])
    return Running(
        services=services,
        widget=widget,
        hello=hello,
        sim_info=sim_info,
        sim_pids=sim_pids,
        widget_url=widget_url,
        hello_url=hello_url,
        widget_workers=widget_workers,
        hello_workers=hello_workers,
        launch_secret=launch_secret,
        config=config,
        passed_through=[k for k in PASS_THROUGH if k in os.environ],
        widget_env=widget_env,
    )


def start_simulator(
    tmp: Path, services: list[Service], latency: float, agents: int
) -> tuple[Service, dict]:
    """The simulator, its own process (appended to `services`), and what it wrote once
    serving: its URL, the accounts, the live calls (bench/simulator.py)."""
    sim_info_path = tmp / "simulator.json"
    sim = Service(
        "simulator",
        [
            PY,
            "-m",
            "bench.simulator",
            "--port",
            str(free_port()),
            "--latency",
            str(latency),
            "--agents",
            str(agents),
            "--out",
            str(sim_info_path),
        ],
        dict(os.environ),
        tmp / "simulator.log",
    )
    services.append(sim)
    deadline = time.monotonic() + 30
    while not sim_info_path.exists():
        sim.alive_or_die()
        if time.monotonic() > deadline:
            sys.exit(f"bench: the simulator did not start\n{sim.tail()}")
        time.sleep(0.05)
    return sim, json.loads(sim_info_path.read_text())
