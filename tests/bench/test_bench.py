"""`make bench` end to end, at a tiny scale: it still runs against the production gunicorn
config, and the figures that do not depend on the machine's speed hold (one mint, no
CloudAgent call per panel load, every save answered). The speed figures are `make bench`'s
own business, on a machine left alone (docs/benchmarks.md)."""

import json
import shutil
import subprocess
import sys

import pytest

from tests.helpers import ROOT

needs_wrk = pytest.mark.skipif(
    shutil.which("wrk") is None, reason="wrk is not installed (.ci/run installs it)"
)


def run_module(*args, timeout):
    return subprocess.run(  # noqa: S603
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@needs_wrk
def test_the_benchmark_runs_and_its_load_free_figures_hold(tmp_path):
    out = tmp_path / "results.json"
    tiny = "--runs 1 --duration 1 --agents 10 --saves-per-agent 2 --rounds 1"
    tiny += " --error-agents 10 --error-saves 20 --no-browser --diagnostic"
    tiny += " --open-panels 20 --idle-seconds 1"
    done = run_module("bench", *tiny.split(), "--out", str(out), timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    table = {row["figure"]: row for row in results["table"]}
    assert "| figure | measured | target | met? |" in done.stdout

    assert results["mints"]["widget_account"] == 1
    assert results["throughput"]["upstream_calls_per_panel_load"] == 0
    assert results["throughput"]["panel_loads"] > 0 and results["throughput"]["panel_non_2xx"] == 0
    errors = results["saves"]["errors_run"]
    assert (errors["requests"], errors["ok"], errors["errors"]) == (20, 20, 0)
    (pair,) = results["saves"]["latency"]["rounds"]
    assert pair["widget"]["ok"] == pair["direct"]["ok"] == 20
    # The widget's own log accounts for every save of the round, with its audit time.
    side = results["saves"]["server_side"]["bench-round1"]
    assert side["requests"] == 20 and side["audit_p50_ms"] > 0
    assert table["save overhead p50 (10 agents)"]["met"] in ("yes", "NO")
    assert table["first panel load"]["measured"] == "not measured: --no-browser"
    panels = results["open_panels"]
    assert panels["streams"] == 20 and panels["delivery_max_ms"] >= 0


def test_the_in_process_cpu_table_runs():
    done = run_module("bench.cpu", "--requests", "30", timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    rows = dict(
        line.strip("| ").split(" | ") for line in done.stdout.splitlines()[2:] if line.strip()
    )
    assert set(rows) == {
        "bare Flask hello",
        "panel, as served (gzip)",
        "panel, not compressed",
        "panel, not compressed, no log line",
        "save (CloudAgent answers at once)",
    }
    assert all(float(value.removesuffix(" ms")) > 0 for value in rows.values())
