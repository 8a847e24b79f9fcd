"""`make bench` (`python -m bench`): the widget's performance figures against their targets.

Starts, each in a process of its own:
  - the CloudAgent simulator (bench/simulator.py) with an upstream latency (default 300 ms);
  - the widget, with the production command `gunicorn -c gunicorn.conf.py wsgi:app`;
  - a bare Flask "hello" app (bench/hello.py) with the same command and the same config;
and drives them from other processes: wrk for throughput, bench/load.py for save latencies and
errors, bench/browser.py (headless Chromium) for what a browser fetches and how soon the form
can be used. Prints one table, writes every raw number to bench/results.json.
See docs/benchmarks.md for the method behind each figure.

This module is the run, one step after another (`main`). Starting and stopping the processes
is bench/services.py's, running wrk bench/wrk.py's, the table and notes bench/report.py's.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from . import streams
from .common import children, free_port, launch_path, median, percentile, say
from .report import print_report, table
from .services import GUNICORN, PY, ROOT, Service, gunicorn_config, http_get, wait_gunicorn
from .wrk import ACCEPT_ENCODING, ensure_wrk, wrk, wrk_version

# The only WIDGET_* variables taken from the caller's environment: the server's shape and the
# shared stores (to bench those set-ups; give them fresh databases). The rest are the bench's.
PASS_THROUGH = ("WIDGET_WORKERS", "WIDGET_THREADS", "WIDGET_DATABASE_URL", "WIDGET_REDIS_URL")


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.perf_counter()
    wrk_bin = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="widget-bench-"))
    services: list[Service] = []  # appended to as each starts: the finally stops those that did
    try:
        results = describe_run(args, wrk_bin)
        running = start_services(args, tmp, services)
        results["passed_through"] = running.passed_through
        results["gunicorn_config"] = running.config
        say_setup(results["machine"], running.config, args.latency)
        # In this order: the first panel load meets the cold cache (its list fetch, the one
        # mint); the throughput warm-up counts the list fetches of that panel's DID alone, so
        # it runs before the saves open every agent's panel.
        open_first_panel(running)
        results["throughput"] = measure_throughput(args, running, wrk_bin)
        results["saves"] = measure_saves(args, running, tmp)
        results["browser"] = measure_browser(args, running, tmp)
        collect(running, results)
        if args.open_panels:
            # Last, on a widget of its own (bench/streams.py): 2,000 idle open panels.
            for service in reversed(services):
                service.stop()
            services.clear()
            say(f"open panels: {args.open_panels} idle event streams on one instance")
            results["open_panels"] = asyncio.run(streams.run(args.open_panels, args.idle_seconds))
            say(json.dumps(results["open_panels"]))
    finally:
        for service in reversed(services):
            service.stop()
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)
    write_report(results, began, args.out)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n")[0])
    add = parser.add_argument
    add("--latency", type=float, default=0.3, help="simulator's seconds per answer (0.3)")
    add("--runs", type=int, default=5, help="throughput runs of each app, alternated (5)")
    add("--duration", type=float, default=5, help="seconds per throughput run (5)")
    add("--connections", type=int, default=32, help="wrk connections (32)")
    add("--agents", type=int, default=200, help="concurrent agents for save latency (200)")
    add("--saves-per-agent", type=int, default=5, help="saves per agent per latency run (5)")
    add("--rounds", type=int, default=5, help="direct/widget latency pairs (5)")
    add("--error-agents", type=int, default=500, help="concurrent agents, errors run (500)")
    add("--error-saves", type=int, default=2000, help="saves in the errors run (2000)")
    add("--diagnostic", type=int, nargs="*", default=[50, 100], help="extra pair concurrencies")
    add("--browser-loads", type=int, default=20, help="loads per time-to-form median (20)")
    add("--no-browser", action="store_true", help="skip the Chromium figures")
    add("--chromium", default=os.environ.get("WIDGET_TEST_CHROMIUM", "/usr/bin/chromium"))
    add("--open-panels", type=int, default=2000, help="idle event streams (2000; 0: skip)")
    add("--idle-seconds", type=float, default=30, help="CPU window of the open panels (30)")
    add("--out", default=str(ROOT / "bench" / "results.json"))
    add("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    return parser.parse_args(argv)


# --- what is measured, on what -------------------------------------------------------------


def describe_run(args: argparse.Namespace, wrk_bin: str) -> dict:
    """The results' head: the command, the machine, the source tree, the settings; and a
    warning on stderr when other work is already loading the machine."""
    results: dict = {"command": "make bench  # python -m bench " + " ".join(sys.argv[1:])}
    results["machine"] = machine()
    results["source"] = source_tree()
    results["machine"]["wrk"] = wrk_version(wrk_bin)
    results["settings"] = vars(args) | {"accept_encoding": ACCEPT_ENCODING}
    results["load_average_at_start"] = os.getloadavg()
    if os.getloadavg()[0] > 0.5 * results["machine"]["nproc"]:
        say(
            f"WARNING: load average {os.getloadavg()[0]:.1f} on {results['machine']['nproc']}"
            " cores: other work is running here, absolute numbers will be noisy"
        )
    return results


def machine() -> dict:
    """The hardware, OS, Python and package versions measured on."""
    model = ""
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = 0
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            mem_kb = int(line.split()[1])
    versions = {}
    for name in ("flask", "gunicorn", "werkzeug", "playwright"):
        try:
            from importlib.metadata import version

            versions[name] = version(name)
        except Exception:  # a missing package is just not listed
            versions[name] = None
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gb": round(mem_kb / 1024 / 1024, 1),
        "kernel": platform.release(),
        "os": _os_name(),
        "python": platform.python_version(),
        **versions,
    }


def _os_name() -> str:
    try:
        for line in Path("/etc/os-release").read_text().splitlines():
            if line.startswith("PRETTY_NAME="):
                return line.split("=", 1)[1].strip('"')
    except OSError:
        pass
    return platform.system()


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


# --- the services --------------------------------------------------------------------------


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


def start_services(args: argparse.Namespace, tmp: Path, services: list[Service]) -> Running:
    """The simulator, then the widget and the hello app under the same gunicorn config; each
    is appended to `services` as soon as it starts. Returns once every worker has forked."""
    sim, sim_info = start_simulator(args, tmp, services)
    sim_pids = [sim.proc.pid, *children(sim.proc.pid)]  # gunicorn's master and worker

    # The widget and the hello app, the same gunicorn config.
    launch_secret = secrets.token_hex(24)
    widget_port, hello_port = free_port(), free_port()
    base_env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")}
    base_env |= {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
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
    )


def start_simulator(
    args: argparse.Namespace, tmp: Path, services: list[Service]
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
            str(args.latency),
            "--agents",
            str(max(args.agents, args.error_agents) + 2 * args.browser_loads + 20),
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


def say_setup(m: dict, config: dict, latency: float) -> None:
    """One progress line: the machine `m` and the servers' shape, once they are up."""
    say(
        f"machine: {m['nproc']} cores ({m['cpu_model']}), {m['memory_gb']} GB, {m['os']}, "
        f"Python {m['python']}, gunicorn {m['gunicorn']} {config['worker_class']} "
        f"{config['workers']} workers x {config['threads']} threads; "
        f"simulator latency {latency * 1000:g} ms"
    )


# --- the measurements, in the order they run ------------------------------------------------


def open_first_panel(running: Running) -> None:
    """First panel: the cold cache (one list fetch, the one mint). Exits if it is not served."""
    first = running.agents[0]
    status, html = http_get(running.panel_url(first), timeout=30)
    if status != 200 or running.sim_info["dispositions"][0].encode() not in html:
        sys.exit(f"bench: the first panel answered {status}\n{running.widget.tail()}")


def measure_throughput(args: argparse.Namespace, running: Running, wrk_bin: str) -> dict:
    """Panel vs hello under wrk, runs alternated, after a warm-up; and the CloudAgent calls
    made during the panel runs."""
    panel = running.panel_url(running.agents[0])
    hello_target = running.hello_url + "/hello"
    widget_workers, hello_workers = running.widget_workers, running.hello_workers
    say(f"throughput: {args.runs} x {args.duration:g} s of each, {args.connections} conns")
    # Warm up until every worker has its list: gthread workers share connections unevenly
    # and each holds its own cache, so one short burst may miss a worker. Only this DID has
    # been asked for so far: the simulator's `get` count is the workers that loaded it.
    # (With a cache shared between workers, the count stops growing at 1: stop then too.)
    gets, quiet, bursts = 0, 0, 0
    while bursts < 10 and gets < running.config["workers"] and quiet < 3:
        wrk(wrk_bin, panel, args.connections, 1, widget_workers)
        now = running.sim_stats()["requests"]["get"]
        quiet = quiet + 1 if now == gets else 0
        gets, bursts = now, bursts + 1
    wrk(wrk_bin, hello_target, args.connections, 2, hello_workers)
    stats_before = running.sim_stats()
    panel_runs, hello_runs = [], []
    for index in range(args.runs):
        order = [("panel", panel), ("hello", hello_target)]
        for name, url in order if index % 2 == 0 else order[::-1]:
            pids = widget_workers if name == "panel" else hello_workers
            run = wrk(wrk_bin, url, args.connections, args.duration, pids)
            (panel_runs if name == "panel" else hello_runs).append(run)
        say(
            f"  run {index + 1}: panel {panel_runs[-1]['rps']:.0f} req/s, "
            f"hello {hello_runs[-1]['rps']:.0f} req/s"
        )
    stats_after = running.sim_stats()
    panel_loads = sum(r["requests"] for r in panel_runs)
    upstream_delta = {
        kind: stats_after["requests"][kind] - stats_before["requests"][kind]
        for kind in stats_after["requests"]
    }
    panel_rps = median([r["rps"] for r in panel_runs])
    hello_rps = median([r["rps"] for r in hello_runs])
    return {
        "panel_runs": panel_runs,
        "hello_runs": hello_runs,
        "panel_rps_median": panel_rps,
        "hello_rps_median": hello_rps,
        "ratio_of_medians": round(panel_rps / hello_rps, 3),
        "median_of_pair_ratios": round(
            median([p["rps"] / h["rps"] for p, h in zip(panel_runs, hello_runs, strict=True)]),
            3,
        ),
        "panel_non_2xx": sum(r["non_2xx"] for r in panel_runs),
        "panel_loads": panel_loads,
        "warm_up": {"bursts": bursts, "list_fetches": gets},
        "upstream_requests_during_panel_runs": upstream_delta,
        "upstream_get_per_panel_load": upstream_delta.get("get", 0) / max(panel_loads, 1),
        "upstream_calls_per_panel_load": sum(upstream_delta.values()) / max(panel_loads, 1),
    }


def measure_saves(args: argparse.Namespace, running: Running, tmp: Path) -> dict:
    """Save latency against the direct baseline, then the errors run: bench/load.py, in a
    process of its own, told what to do in load.json."""
    say(f"saves: {args.rounds} direct/widget pairs at {args.agents} agents, then errors run")
    sim_info = running.sim_info
    load_config = {
        "widget_url": running.widget_url,
        "sim_url": running.sim_url,
        "launch_secret": running.launch_secret,
        "widget_calls": running.calls,
        "direct": sim_info["direct"],
        "disposition": sim_info["dispositions"][0],
        "latency_runs": {
            "rounds": args.rounds,
            "concurrency": args.agents,
            "saves_per_agent": args.saves_per_agent,
        },
        "errors_run": {"concurrency": args.error_agents, "saves": args.error_saves},
        "diagnostic": args.diagnostic,
        "stagger": args.latency,
        "pids": {"simulator": running.sim_pids, "widget": running.widget_workers},
    }
    (tmp / "load.json").write_text(json.dumps(load_config))
    subprocess.run(  # noqa: S603
        [PY, "-m", "bench.load", str(tmp / "load.json"), str(tmp / "load-out.json")],
        cwd=ROOT,
        check=True,
    )
    saves = json.loads((tmp / "load-out.json").read_text())
    for service in running.services:
        service.alive_or_die()
    return saves


def measure_browser(args: argparse.Namespace, running: Running, tmp: Path) -> dict:
    """The first and repeat panel loads and the time to an enabled form, in headless Chromium
    (bench/browser.py, its own process); or {"skipped": why}."""
    if args.no_browser:
        return {"skipped": "--no-browser"}
    if not shutil.which(args.chromium):
        return {"skipped": f"no Chromium at {args.chromium} (Debian: apt-get install chromium)"}
    say(
        f"browser: first and repeat load, {args.browser_loads} loads cold and warm, "
        "search keystrokes"
    )
    # Agents of their own, past those the save runs use (the simulator made enough of them).
    spare = running.agents[max(args.agents, args.error_agents) :]
    browser_config = {
        "widget_url": running.widget_url,
        "secret": running.launch_secret,
        "chromium": args.chromium,
        "loads": args.browser_loads,
        "calls": [{"agent": a, **running.calls[a]} for a in spare],
        "search_call": running.sim_info["search_call"],
    }
    (tmp / "browser.json").write_text(json.dumps(browser_config))
    done = subprocess.run(  # noqa: S603
        [PY, "-m", "bench.browser", str(tmp / "browser.json"), str(tmp / "browser-out.json")],
        cwd=ROOT,
        check=False,
    )
    if done.returncode == 0:
        return json.loads((tmp / "browser-out.json").read_text())
    return {"skipped": f"the browser run failed ({done.returncode})"}


def collect(running: Running, results: dict) -> None:
    """Adds the figures read after the measurements: the widget's own view of the saves and
    the browser loads (from its log), the simulator's totals and mints, and whether every
    gunicorn worker lived through the run."""
    # The widget's own log, per tagged run: saves' server time, browser loads' requests.
    server = server_side(running.widget.log_path)
    results["saves"]["server_side"] = {
        tag: run for tag, run in server.items() if not tag.startswith("bench-browser")
    }
    if "first_load" in results["browser"]:
        for name in ("first", "repeat"):
            seen = server.get(f"bench-browser-{name}", {}).get("requests")
            results["browser"][f"{name}_load"]["requests_seen_by_server"] = seen

    final = running.sim_stats()
    user = running.sim_info["widget"]["username"]
    results["upstream_totals"] = final["requests"]
    results["mints"] = {
        "widget_account": final["mints"].get(user, 0),
        "widget_account_attempts": final["mint_attempts"].get(user, 0),
        "all_accounts": final["mints"],
    }
    for service in running.services:
        service.alive_or_die()
    results["workers_unchanged"] = (
        children(running.widget.proc.pid) == running.widget_workers
        and children(running.hello.proc.pid) == running.hello_workers
    )


def server_side(log_path: Path) -> dict:
    """The widget's own view of each tagged run, from its one JSON line per request (the load
    generator and the browser tag their requests in X-Request-ID): how many requests, the time
    inside the app, the time waiting on CloudAgent and (saves) writing the audit trail. For
    saves, client time minus server time is time spent before a worker thread took the request
    (or on the wire). Empty if the log's format is not the one expected."""
    runs: dict[str, dict[str, list[float]]] = {}
    with log_path.open(errors="replace") as handle:
        for line in handle:
            if '"bench-' not in line:
                continue
            try:
                record = json.loads(line)
            except ValueError:
                continue
            tag = str(record.get("request_id", "")).rpartition(".")[0]
            if record.get("message") != "request" or not tag.startswith("bench-"):
                continue
            run = runs.setdefault(tag, {"server": [], "upstream": [], "audit": []})
            run["server"].append(float(record.get("duration_ms", 0)))
            run["upstream"].append(float(record.get("upstream_ms", 0)))
            if "audit_ms" in record:
                run["audit"].append(float(record["audit_ms"]))
    return {
        tag: {
            "requests": len(run["server"]),
            "server_p50_ms": round(percentile(run["server"], 50), 1),
            "server_p99_ms": round(percentile(run["server"], 99), 1),
            "upstream_p50_ms": round(percentile(run["upstream"], 50), 1),
            "upstream_p99_ms": round(percentile(run["upstream"], 99), 1),
            "audit_p50_ms": round(percentile(run["audit"], 50), 1),
            "audit_p99_ms": round(percentile(run["audit"], 99), 1),
        }
        for tag, run in sorted(runs.items())
    }


def write_report(results: dict, began: float, out: str) -> None:
    """Completes `results` (the run's length, the load at its end, the table), writes them to
    `out` as JSON and prints the report."""
    results["seconds"] = round(time.perf_counter() - began, 1)
    results["load_average_at_end"] = os.getloadavg()
    results["table"] = table(results)
    Path(out).write_text(json.dumps(results, indent=1) + "\n")
    print_report(results)
    say(f"raw numbers: {os.path.relpath(out)}; whole run {results['seconds']:.0f} s")


if __name__ == "__main__":
    main()
