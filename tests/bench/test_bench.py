"""`make bench` end to end, at a tiny scale: it still runs against the production gunicorn
config, and the figures that do not depend on the machine's speed hold (one mint, no
CloudAgent call per panel load, every save answered). The speed figures are `make bench`'s
own business, on a machine left alone (docs/benchmarks.md)."""

import json
import re
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
    tiny += " --open-panels 20 --idle-seconds 1 --cpu-runs 1 --cpu-requests 200"
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
    # The CPU figures, on servers of their own with the throughput step's worker count.
    cpu = results["cpu_outside"]
    assert cpu["gunicorn_config"] == results["gunicorn_config"]
    assert cpu["save_ms"]["median"] > 0 and cpu["panel_ms"]["median"] > 0
    assert table["widget CPU per panel load ÷ per hello request"]["met"] in ("yes", "NO")
    assert table["widget CPU per save"]["met"] in ("yes", "NO")
    at50 = "save overhead p50 / p99 at 50 agents (≈ 170 saves/s)"
    assert table[at50]["measured"] == "not measured: --diagnostic without 50"
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


def test_cpu_ticks_are_read_past_a_command_name_with_spaces_and_parentheses():
    from bench.common import stat_parent, stat_ticks

    # pid (comm) state ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime
    # stime cutime cstime ...: children's time (cutime, cstime) is not the process's own.
    stat = "4242 (gunicorn: worker [x) (y)]) S 4200 4200 1 0 -1 4194560 10 0 0 0 137 42 9 9 20"
    assert stat_ticks(stat) == 137 + 42
    assert stat_parent(stat) == 4200


def test_a_server_tree_is_its_master_and_every_process_below():
    from bench.common import descendants

    parents = {1: 0, 100: 1, 101: 100, 102: 100, 103: 102, 200: 1, 201: 200}
    assert descendants(100, parents) == [100, 101, 102, 103]
    assert descendants(201, parents) == [201]


def test_answers_are_read_as_the_browser_reads_them():
    import gzip
    import zlib

    import brotli

    from bench.outside import Failed, decoded

    page = b"<div data-outcome='queued'>" * 50
    assert decoded({"content-encoding": "gzip"}, gzip.compress(page)) == page
    assert decoded({"content-encoding": "deflate"}, zlib.compress(page)) == page
    assert decoded({"content-encoding": "br"}, brotli.compress(page)) == page
    assert decoded({}, page) == page
    with pytest.raises(Failed):
        decoded({"content-encoding": "zstd"}, page)


def test_the_outside_cpu_table_runs():
    done = run_module(
        "bench.outside", "--runs", "1", "--requests", "200", "--workers", "2", timeout=120
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 workers" in done.stdout
    rows = {
        line.split(" | ")[0].strip("| "): line.split(" | ")[1]
        for line in done.stdout.splitlines()
        if line.startswith("| ") and " ms" in line.split(" | ")[1]
    }
    assert set(rows) == {"hello CPU per request", "panel CPU per request", "save CPU per request"}
    assert all(float(value.removesuffix(" ms")) > 0 for value in rows.values())
    # Each request is handed to a pool thread and back at least: switches are counted.
    number = r"(\d+\.\d)"
    switched = re.search(
        rf"Context switches per request \(medians\): hello {number}, panel {number}, "
        rf"save {number}\.",
        done.stdout,
    )
    assert switched and all(float(n) >= 1 for n in switched.groups()), done.stdout[-1500:]


def test_profile_samples_go_to_the_first_part_on_their_stack_and_waits_to_none():
    from bench.profile import parts

    raw = "\n".join(
        [
            "thread (1);_worker (thread.py:1);Flask.wsgi_app (app.py:9);"
            "save (views.py:3);AuditLog.begin (log.py:342);GroupCommit.run (x.py:2) 5",
            "thread (1);Flask.wsgi_app (app.py:9);launch (views.py:1);"
            "issue (context.py:31);dumps (serializer.py:3) 3",
            "thread (2);BaseEventLoop._run_once (base_events.py:1);"
            "ASGIProtocol.data_received (protocol.py:4) 2",
            "thread (3);_worker (thread.py:1);Condition.wait (threading.py:320) 40",
            "thread (4);something (else.py:1) 1",
        ]
    )
    counts, total = parts(raw)
    assert total == 11  # the 40 samples of a thread waiting are not work
    assert counts == {
        "the audit trail": 5,
        "launch check, context and CSRF tokens": 3,
        "gunicorn's asgi worker": 2,
        "other": 1,
    }


def test_compare_counts_other_minus_this_pair_by_pair():
    from bench.compare import Compared

    compared = Compared(this=[400.0, 410.0, 405.0], other=[390.0, 415.0, 380.0])
    assert compared.differences() == [-10.0, 5.0, -25.0]
    assert compared.summary() == {
        "this_us": 405.0,
        "other_us": 390.0,
        "difference_us": -10.0,
        "other_cheaper_pairs": 2,
        "pairs": 3,
    }


def copy_of_this_tree(into):
    into.mkdir()
    for name in ("webapp", "templates", "static", "translations"):
        shutil.copytree(ROOT / name, into / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("wsgi.py", "gunicorn.conf.py"):
        shutil.copy(ROOT / name, into / name)
    return into


def test_compare_tells_a_tree_whose_panel_does_more_work(tmp_path):
    """A copy of this tree whose panel burns about a millisecond more: the comparison finds
    it costlier in every pair, by hundreds of µs."""
    other = copy_of_this_tree(tmp_path / "other")
    views = other / "webapp" / "panel" / "views.py"
    text = views.read_text()
    launch = "def launch() -> ResponseReturnValue:\n"
    assert launch in text
    views.write_text(text.replace(launch, launch + "    sum(range(40_000))\n", 1))

    done = run_module("bench.compare", str(other), "--pairs", "2", "--requests", "100", timeout=180)
    assert done.returncode == 0, done.stderr[-3000:]
    found = re.search(
        r"this tree \(.*\) ([\d.]+) µs, the other \(.*\) ([\d.]+) µs\. Other minus this, the "
        r"pairs' median: \+([\d.]+) µs; the other cost less in 0 of 2 pairs\.",
        done.stdout,
    )
    assert found, done.stdout[-2000:]
    this, other_us, difference = map(float, found.groups())
    assert difference > 300 and other_us > this + 300


def test_compare_measures_saves_with_both_widgets_on_one_cloudagent_token(tmp_path):
    """Both widgets save to one CloudAgent account: with a token each, the second mint looked
    like another system signing in and every save was refused."""
    other = copy_of_this_tree(tmp_path / "other")
    done = run_module(
        "bench.compare", str(other), "--what", "save", "--pairs", "1", "--requests", "40",
        timeout=180,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert re.search(r"CPU per save, one worker each, medians of 1 pairs", done.stdout), done.stdout
