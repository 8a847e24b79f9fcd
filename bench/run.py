"""`make bench` (`python -m bench`): the widget's performance figures against their targets.

Starts, each in a process of its own:
  - the CloudAgent simulator (bench/simulator.py) with an upstream latency (default 300 ms);
  - the widget, with the production command `gunicorn -c gunicorn.conf.py wsgi:app`;
  - a bare Flask "hello" app (bench/hello.py) with the same command and the same config;
and drives them from other processes: wrk for throughput, bench/load.py for save latencies and
errors, bench/browser.py (headless Chromium) for what a browser fetches and how soon the form
can be used; then, on servers of their own against a simulator that answers at once, the CPU
per panel load, per hello request and per save (bench/outside.py). Prints one table, writes
every raw number to bench/results.json.
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
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from . import outside, streams
from .common import children, median, percentile, say
from .report import print_report, table
from .services import PY, ROOT, Running, Service, http_get, source_tree, start_services
from .wrk import ACCEPT_ENCODING, ACCEPT_LANGUAGE, ensure_wrk, wrk, wrk_version


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    began = time.perf_counter()
    wrk_bin = ensure_wrk()
    tmp = Path(tempfile.mkdtemp(prefix="widget-bench-"))
    services: list[Service] = []  # appended to as each starts: the finally stops those that did
    try:
        results = describe_run(args, wrk_bin)
        # Agents enough for the save runs and the browser's loads, each with a live call.
        agents = max(args.agents, args.error_agents) + 2 * args.browser_loads + 20
        running = start_services(tmp, services, args.latency, agents)
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
        for service in reversed(services):
            service.stop()
        services.clear()
        # Then, on servers of their own against a CloudAgent that answers at once: the CPU per
        # panel load, per hello request and per save (bench/outside.py).
        results["cpu_outside"] = measure_cpu_outside(args, tmp, running.config)
        if args.open_panels:
            # Last, on a widget of its own (bench/streams.py): 2,000 idle open panels.
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
    add("--cpu-runs", type=int, default=5, help="CPU per request runs, latency 0 (5; 0: skip)")
    add("--cpu-requests", type=int, default=600, help="requests per CPU figure and run (600)")
    add("--cpu-clients", type=int, default=8, help="keep-alive clients of the CPU runs (8)")
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
    results["settings"] = vars(args) | {
        "accept_encoding": ACCEPT_ENCODING,
        "accept_language": ACCEPT_LANGUAGE,
    }
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


def measure_cpu_outside(args: argparse.Namespace, tmp: Path, config: dict) -> dict:
    """CPU per panel load, per hello request and per save, from outside (bench/outside.py):
    its own simulator (latency 0), widget and hello, the same environment and worker count as
    the servers measured before; or {"skipped": why}."""
    if args.cpu_runs < 1:
        return {"skipped": "--cpu-runs 0"}
    say(
        f"CPU per request: {args.cpu_runs} runs of {args.cpu_requests} requests from "
        f"{args.cpu_clients} clients, CloudAgent answering at once"
    )
    (tmp / "cpu").mkdir()
    try:
        result = outside.run(None, args.cpu_requests, args.cpu_clients, args.cpu_runs, tmp / "cpu")
    except outside.Failed as error:
        return {"skipped": f"failed: {error}"}
    if result["gunicorn_config"] != config:
        sys.exit("bench: the CPU step's servers did not get the throughput step's config")
    say(outside.table(result))
    return result


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
