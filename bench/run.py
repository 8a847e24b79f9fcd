"""`make bench` (`python -m bench`): the widget's performance figures against their targets.

Starts, each in a process of its own:
  - the CloudAgent simulator (bench/simulator.py) with an upstream latency (default 300 ms);
  - the widget, with the production command `gunicorn -c gunicorn.conf.py wsgi:app`;
  - a bare Flask "hello" app (bench/hello.py) with the same command and the same config;
and drives them from other processes: wrk for throughput, bench/load.py for save latencies and
errors, bench/browser.py (headless Chromium) for what a browser fetches and how soon the form
can be used. Prints one table, writes every raw number to bench/results.json.
See docs/benchmarks.md for the method behind each figure.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import runpy
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from .common import children, cpu_seconds, free_port, launch_path, median, percentile

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
GUNICORN = str(Path(PY).parent / "gunicorn")
ACCEPT_ENCODING = "gzip, deflate, br, zstd"  # what Chromium sends
# The only WIDGET_* variables taken from the caller's environment: the server's shape and the
# shared stores (to bench those set-ups; give them fresh databases). The rest are the bench's.
PASS_THROUGH = ("WIDGET_WORKERS", "WIDGET_THREADS", "WIDGET_DATABASE_URL", "WIDGET_REDIS_URL")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- the machine ---------------------------------------------------------------------------


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


def machine() -> dict:
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


def ensure_wrk() -> str:
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() == 0 and shutil.which("apt-get"):
        say("wrk is missing: apt-get install -y wrk")
        env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
        command = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(command, env=env, check=False).returncode != 0:  # noqa: S603
            subprocess.run(["apt-get", "update", "-q"], env=env, check=False)  # noqa: S603,S607
            subprocess.run(command, env=env, check=False)  # noqa: S603
        found = shutil.which("wrk")
    if not found:
        sys.exit(
            "bench: wrk (the HTTP load generator) is not installed and could not be installed "
            "here (it needs root and apt-get). Install it: `sudo apt-get install wrk` on "
            "Debian/Ubuntu, `brew install wrk` on macOS, then run `make bench` again."
        )
    return found


# --- the services --------------------------------------------------------------------------


class Service:
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
    request = urllib.request.Request(url)  # noqa: S310 - loopback URLs we built
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def wait_gunicorn(service: Service, url: str, workers: int, timeout: float = 60) -> list[int]:
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


# --- wrk -----------------------------------------------------------------------------------

_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(number) * _UNITS[unit]


def _found(pattern: str, text: str) -> str | None:
    match = re.search(pattern, text)
    return match.group(1) if match else None


def wrk(binary: str, url: str, connections: int, seconds: float, pids: list[int]) -> dict:
    threads = max(1, min(connections, len(os.sched_getaffinity(0))))
    command = [
        binary,
        f"-t{threads}",
        f"-c{connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-H",
        f"Accept-Encoding: {ACCEPT_ENCODING}",
        url,
    ]
    before_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    before = cpu_seconds(pids)
    began = time.perf_counter()
    out = subprocess.run(command, capture_output=True, text=True, check=True).stdout  # noqa: S603
    wall = time.perf_counter() - began
    after_children = resource.getrusage(resource.RUSAGE_CHILDREN)
    requests = int(re.search(r"(\d+) requests in", out).group(1))
    result = {
        "requests": requests,
        "rps": float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)),
        "non_2xx": int(_found(r"Non-2xx or 3xx responses: (\d+)", out) or 0),
        "socket_errors": _found(r"Socket errors: (.*)", out) or "",
        "cpu_cores_server": round((cpu_seconds(pids) - before) / wall, 2),
        "cpu_cores_wrk": round(
            (
                after_children.ru_utime
                + after_children.ru_stime
                - before_children.ru_utime
                - before_children.ru_stime
            )
            / wall,
            2,
        ),
    }
    for pct in ("50", "99"):
        match = re.search(rf"^\s+{pct}%\s+(\S+)", out, re.MULTILINE)
        result[f"p{pct}_ms"] = round(_ms(match.group(1)), 2) if match else None
    return result


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


# --- the run -------------------------------------------------------------------------------


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
    add("--out", default=str(ROOT / "bench" / "results.json"))
    add("--keep", action="store_true", help="keep the temporary folder (logs, data)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.perf_counter()
    wrk_bin = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="widget-bench-"))
    services: list[Service] = []
    results: dict = {"command": "make bench  # python -m bench " + " ".join(sys.argv[1:])}
    try:
        results["machine"] = machine()
        results["source"] = source_tree()
        results["machine"]["wrk"] = subprocess.run(  # noqa: S603
            [wrk_bin, "--version"], capture_output=True, text=True, check=False
        ).stdout.split(" [")[0]
        results["settings"] = vars(args) | {"accept_encoding": ACCEPT_ENCODING}
        results["load_average_at_start"] = os.getloadavg()
        if os.getloadavg()[0] > 0.5 * results["machine"]["nproc"]:
            say(
                f"WARNING: load average {os.getloadavg()[0]:.1f} on {results['machine']['nproc']}"
                " cores: other work is running here, absolute numbers will be noisy"
            )

        # The simulator, its own process.
        sim_port = free_port()
        sim_info_path = tmp / "simulator.json"
        sim = Service(
            "simulator",
            [
                PY,
                "-m",
                "bench.simulator",
                "--port",
                str(sim_port),
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
        sim_info = json.loads(sim_info_path.read_text())
        sim_url = sim_info["url"]
        sim_pids = [sim.proc.pid, *children(sim.proc.pid)]  # gunicorn's master and worker

        # The widget and the hello app, the same gunicorn config.
        launch_secret = secrets.token_hex(24)
        widget_port, hello_port = free_port(), free_port()
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")}
        base_env |= {k: os.environ[k] for k in PASS_THROUGH if k in os.environ}
        base_env |= {
            "WIDGET_CLOUDAGENT_URL": sim_url,
            "WIDGET_CLOUDAGENT_USERNAME": sim_info["widget"]["username"],
            "WIDGET_CLOUDAGENT_API_KEY": sim_info["widget"]["api_key"],
            "WIDGET_SECRET_KEY": secrets.token_hex(24),
            "WIDGET_LAUNCH_SECRET": launch_secret,
            "WIDGET_DATA_DIR": str(tmp / "widget-data"),
            "WIDGET_SAVES_PER_MINUTE": "10000",
        }
        (tmp / "widget-data").mkdir()
        widget_env = base_env | {"WIDGET_BIND": f"127.0.0.1:{widget_port}"}
        hello_env = base_env | {"WIDGET_BIND": f"127.0.0.1:{hello_port}"}
        # Names only: a database URL may hold a password.
        results["passed_through"] = [k for k in PASS_THROUGH if k in os.environ]
        config = gunicorn_config(widget_env)
        results["gunicorn_config"] = config
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
        m = results["machine"]
        say(
            f"machine: {m['nproc']} cores ({m['cpu_model']}), {m['memory_gb']} GB, {m['os']}, "
            f"Python {m['python']}, gunicorn {m['gunicorn']} {config['worker_class']} "
            f"{config['workers']} workers x {config['threads']} threads; "
            f"simulator latency {args.latency * 1000:g} ms"
        )

        calls = sim_info["widget"]["calls"]
        agents = sorted(calls)

        def panel_url(agent: str) -> str:
            call = calls[agent]
            return widget_url + launch_path(call["ucid"], agent, call["did"], launch_secret)

        # First panel: the cold cache (one list fetch, the one mint).
        status, html = http_get(panel_url(agents[0]), timeout=30)
        if status != 200 or sim_info["dispositions"][0].encode() not in html:
            sys.exit(f"bench: the first panel answered {status}\n{widget.tail()}")

        # --- throughput: panel vs hello, alternated -------------------------------------
        panel = panel_url(agents[0])
        hello_target = hello_url + "/hello"
        say(f"throughput: {args.runs} x {args.duration:g} s of each, {args.connections} conns")
        # Warm up until every worker has its list: gthread workers share connections unevenly
        # and each holds its own cache, so one short burst may miss a worker. Only this DID has
        # been asked for so far: the simulator's `get` count is the workers that loaded it.
        # (With a cache shared between workers, the count stops growing at 1: stop then too.)
        gets, quiet, bursts = 0, 0, 0
        while bursts < 10 and gets < config["workers"] and quiet < 3:
            wrk(wrk_bin, panel, args.connections, 1, widget_workers)
            now = json.loads(http_get(sim_url + "/sim/stats")[1])["requests"]["get"]
            quiet = quiet + 1 if now == gets else 0
            gets, bursts = now, bursts + 1
        wrk(wrk_bin, hello_target, args.connections, 2, hello_workers)
        stats_before = json.loads(http_get(sim_url + "/sim/stats")[1])
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
        stats_after = json.loads(http_get(sim_url + "/sim/stats")[1])
        panel_loads = sum(r["requests"] for r in panel_runs)
        upstream_delta = {
            kind: stats_after["requests"][kind] - stats_before["requests"][kind]
            for kind in stats_after["requests"]
        }
        panel_rps = median([r["rps"] for r in panel_runs])
        hello_rps = median([r["rps"] for r in hello_runs])
        results["throughput"] = {
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

        # --- saves: latency against the direct baseline, errors ------------------------
        say(f"saves: {args.rounds} direct/widget pairs at {args.agents} agents, then errors run")
        load_config = {
            "widget_url": widget_url,
            "sim_url": sim_url,
            "launch_secret": launch_secret,
            "widget_calls": calls,
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
            "pids": {"simulator": sim_pids, "widget": widget_workers},
        }
        (tmp / "load.json").write_text(json.dumps(load_config))
        subprocess.run(  # noqa: S603
            [PY, "-m", "bench.load", str(tmp / "load.json"), str(tmp / "load-out.json")],
            cwd=ROOT,
            check=True,
        )
        results["saves"] = json.loads((tmp / "load-out.json").read_text())
        for service in services:
            service.alive_or_die()

        # --- the browser ------------------------------------------------------------------
        if args.no_browser:
            results["browser"] = {"skipped": "--no-browser"}
        elif not shutil.which(args.chromium):
            results["browser"] = {
                "skipped": f"no Chromium at {args.chromium} (Debian: apt-get install chromium)"
            }
        else:
            say(f"browser: first and repeat load, {args.browser_loads} loads cold and warm")
            spare = agents[max(args.agents, args.error_agents) :]
            browser_config = {
                "widget_url": widget_url,
                "secret": launch_secret,
                "chromium": args.chromium,
                "loads": args.browser_loads,
                "calls": [{"agent": a, **calls[a]} for a in spare],
            }
            (tmp / "browser.json").write_text(json.dumps(browser_config))
            done = subprocess.run(  # noqa: S603
                [
                    PY,
                    "-m",
                    "bench.browser",
                    str(tmp / "browser.json"),
                    str(tmp / "browser-out.json"),
                ],
                cwd=ROOT,
                check=False,
            )
            if done.returncode == 0:
                results["browser"] = json.loads((tmp / "browser-out.json").read_text())
            else:
                results["browser"] = {"skipped": f"the browser run failed ({done.returncode})"}

        # The widget's own log, per tagged run: saves' server time, browser loads' requests.
        server = server_side(widget.log_path)
        results["saves"]["server_side"] = {
            tag: run for tag, run in server.items() if not tag.startswith("bench-browser")
        }
        if "first_load" in results["browser"]:
            for name in ("first", "repeat"):
                seen = server.get(f"bench-browser-{name}", {}).get("requests")
                results["browser"][f"{name}_load"]["requests_seen_by_server"] = seen

        # --- the whole run --------------------------------------------------------------
        final = json.loads(http_get(sim_url + "/sim/stats")[1])
        user = sim_info["widget"]["username"]
        results["upstream_totals"] = final["requests"]
        results["mints"] = {
            "widget_account": final["mints"].get(user, 0),
            "widget_account_attempts": final["mint_attempts"].get(user, 0),
            "all_accounts": final["mints"],
        }
        for service in services:
            service.alive_or_die()
        results["workers_unchanged"] = (
            children(widget.proc.pid) == widget_workers
            and children(hello.proc.pid) == hello_workers
        )
    finally:
        for service in reversed(services):
            service.stop()
        if args.keep:
            say(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)

    results["seconds"] = round(time.perf_counter() - began, 1)
    results["load_average_at_end"] = os.getloadavg()
    results["table"] = table(results)
    Path(args.out).write_text(json.dumps(results, indent=1) + "\n")
    print_report(results)
    say(f"raw numbers: {os.path.relpath(args.out)}; whole run {results['seconds']:.0f} s")


# --- the table -----------------------------------------------------------------------------


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def _seen(load: dict) -> str:
    seen = load.get("requests_seen_by_server")
    return "" if seen is None else f" (widget's log: {seen} request{'s' if seen != 1 else ''})"


def table(r: dict) -> list[dict]:
    rows = []

    def row(figure: str, measured: str, target: str, met: bool | None) -> None:
        rows.append(
            {
                "figure": figure,
                "measured": measured,
                "target": target,
                "met": "n/a" if met is None else ("yes" if met else "NO"),
            }
        )

    t = r["throughput"]
    row(
        "panel render throughput / bare Flask hello",
        f"{t['ratio_of_medians']:.2f} ({t['panel_rps_median']:.0f} / {t['hello_rps_median']:.0f}"
        f" req/s; median of pair ratios {t['median_of_pair_ratios']:.2f})"
        + (f"; {t['panel_non_2xx']} non-2xx answers" if t["panel_non_2xx"] else ""),
        "≥ 0.5",
        t["ratio_of_medians"] >= 0.5 and t["panel_non_2xx"] == 0,
    )
    per_load = t["upstream_calls_per_panel_load"]
    row(
        "upstream calls per panel load (steady state)",
        f"{per_load:.1g} ({sum(t['upstream_requests_during_panel_runs'].values())} calls / "
        f"{t['panel_loads']} panel loads)",
        "0",
        per_load == 0,
    )
    mints = r["mints"]["widget_account"]
    row("token mints, whole run, all workers", str(mints), "1", mints == 1)
    lat = r["saves"]["latency"]
    rounds = r["saves"]["latency"]["rounds"]
    agents = rounds[0]["widget"]["concurrency"] if rounds else 0
    row(
        f"save overhead p50 ({agents} agents)",
        f"{lat['overhead_p50_ms_median']:.1f} ms (widget {lat['widget_p50_ms_median']:.0f} − "
        f"direct {lat['direct_p50_ms_median']:.0f} ms)",
        "≤ 5 ms",
        lat["overhead_p50_ms_median"] <= 5,
    )
    row(
        f"save overhead p99 ({agents} agents)",
        f"{lat['overhead_p99_ms_median']:.1f} ms (widget {lat['widget_p99_ms_median']:.0f} − "
        f"direct {lat['direct_p99_ms_median']:.0f} ms)",
        "≤ 25 ms",
        lat["overhead_p99_ms_median"] <= 25,
    )
    e = r["saves"]["errors_run"]
    row(
        f"errors: {e['requests']} saves from {e['concurrency']} agents",
        f"{e['errors']} (p50 {e['p50_ms']:.0f} ms, p99 {e['p99_ms']:.0f} ms)",
        "0",
        e["errors"] == 0,
    )
    b = r["browser"]
    if "skipped" in b:
        for figure in ("first panel load", "repeat panel load", "time to enabled form"):
            row(figure, f"not measured: {b['skipped']}", "", None)
        return rows
    first, repeat = b["first_load"], b["repeat_load"]
    row(
        "first panel load: requests, bytes on the wire",
        f"{first['requests']} requests, {_kb(first['bytes'])}{_seen(first)}",
        "≤ 3, ≤ 25 KB",
        first["requests"] <= 3 and first["bytes"] <= 25 * 1024,
    )
    html_only = [d["path"] for d in repeat["detail"] if d["on_network"]]
    row(
        "repeat panel load (assets cached)",
        f"{repeat['requests']} request{'s' if repeat['requests'] != 1 else ''} "
        f"({', '.join(p.split('/')[-1][:40] or '/' for p in html_only)}), {_kb(repeat['bytes'])}"
        f"{_seen(repeat)}",
        "1, HTML only",
        repeat["requests"] == 1 and html_only[0].startswith("disposition"),
    )
    cold, warm = b["ready_cold"], b["ready_warm"]
    row(
        "navigation → enabled form, empty cache",
        f"{cold['median_ms']:.0f} ms (median of {cold['loads']}; p90 {cold['p90_ms']:.0f})",
        "≤ 150 ms",
        cold["median_ms"] <= 150,
    )
    row(
        "navigation → enabled form, assets cached",
        f"{warm['median_ms']:.0f} ms (median of {warm['loads']}; p90 {warm['p90_ms']:.0f})",
        "≤ 150 ms",
        warm["median_ms"] <= 150,
    )
    return rows


def markdown(rows: list[dict]) -> str:
    lines = ["| figure | measured | target | met? |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['figure']} | {r['measured']} | {r['target']} | {r['met']} |" for r in rows]
    return "\n".join(lines)


def print_report(r: dict) -> None:
    m, c = r["machine"], r["gunicorn_config"]
    print()
    print(
        f"Machine: {m['nproc']} cores, {m['cpu_model']}, {m['memory_gb']} GB RAM, {m['os']}, "
        f"kernel {m['kernel']}; Python {m['python']}, gunicorn {m['gunicorn']}, "
        f"{m['wrk']}, Chromium {r['browser'].get('chromium', '-')}"
    )
    print(
        f"gunicorn.conf.py: {c['worker_class']}, {c['workers']} workers x {c['threads']} threads, "
        f"keepalive {c['keepalive']} s; simulator latency {r['settings']['latency'] * 1000:g} ms"
    )
    src = r["source"]
    dirty = f" + {len(src['uncommitted'])} uncommitted files" if src["uncommitted"] else ""
    print(f"Source: {src['commit']} {src['subject']!r}{dirty}")
    print(
        "Load average (1, 5, 15 min) at start "
        + ", ".join(f"{x:.1f}" for x in r["load_average_at_start"])
        + "; at end "
        + ", ".join(f"{x:.1f}" for x in r["load_average_at_end"])
    )
    print()
    print(markdown(r["table"]))
    print()
    for line in notes(r):
        print(line)
    print()


def notes(r: dict) -> list[str]:
    """A few lines on where the time goes, from the same run."""
    out = []
    saves, server = r["saves"], r["saves"].get("server_side", {})
    for index, pair in enumerate(saves["latency"]["rounds"], 1):
        w = pair["widget"]
        side = server.get(f"bench-round{index}")
        inside = (
            f"; in the app p50 {side['server_p50_ms']:.0f} ms of which CloudAgent "
            f"{side['upstream_p50_ms']:.0f} ms, audit trail {side['audit_p50_ms']:.1f} ms "
            f"(p99 {side['audit_p99_ms']:.1f})"
            if side
            else ""
        )
        per_save = w["cpu_cores"].get("widget", 0) / w["throughput_per_s"] * 1000
        busy = (
            f"machine busy {w['machine_busy']:.0%} (median 100 ms window), "
            f"{w['machine_saturated']:.0%} of windows ≥ 95 %; "
            if w.get("machine_busy") is not None
            else ""
        )
        out.append(
            f"saves round {index}: client p50 {w['p50_ms']:.0f} ms{inside}; "
            f"{w['throughput_per_s']:.0f} saves/s at {per_save:.1f} ms of widget CPU each; "
            f"{busy}agents' connections per worker "
            f"{w.get('connections_per_worker')}; CPU cores {w['cpu_cores']}"
        )
    for diagnostic in saves.get("diagnostic", []):
        out.append(
            f"save overhead at {diagnostic['concurrency']} agents (median of "
            f"{len(diagnostic['pairs'])} pairs): p50 {diagnostic['overhead_p50_ms']:.1f} ms, "
            f"p99 {diagnostic['overhead_p99_ms']:.1f} ms"
        )
    check = saves.get("simulator_check")
    if check:
        out.append(
            f"simulator alone, {check['concurrency']} agents: p50 {check['p50_ms']:.0f} ms, p99 "
            f"{check['p99_ms']:.0f} ms, {check['throughput_per_s']:.0f} answers/s, "
            f"{check['cpu_cores']['simulator']:.2f} cores (latency "
            f"{r['settings']['latency'] * 1000:g} ms)"
        )
    if not r.get("workers_unchanged", True):
        out.append("WARNING: a gunicorn worker died or was replaced during the run")
    t = r["throughput"]
    out.append(
        "throughput CPU (cores, median): panel server "
        f"{median([x['cpu_cores_server'] for x in t['panel_runs']]):.2f}, wrk "
        f"{median([x['cpu_cores_wrk'] for x in t['panel_runs']]):.2f}; hello server "
        f"{median([x['cpu_cores_server'] for x in t['hello_runs']]):.2f}, wrk "
        f"{median([x['cpu_cores_wrk'] for x in t['hello_runs']]):.2f}"
    )
    return out


if __name__ == "__main__":
    main()
