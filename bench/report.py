"""The benchmark's report: the table of figures against their targets (also kept in
results.json), the machine and source lines above it and the notes on where the time went.
Reads only the results dict that bench/run.py builds."""

from __future__ import annotations

from .common import median


def _kb(n: float) -> str:
    return f"{n / 1024:.1f} KB"


def _seen(load: dict) -> str:
    seen = load.get("requests_seen_by_server")
    return "" if seen is None else f" (widget's log: {seen} request{'s' if seen != 1 else ''})"


def table(r: dict) -> list[dict]:
    """One row per figure: what was measured, its target, whether it was met."""
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
    cpu_rows(r.get("cpu_outside", {"skipped": "not in this run"}), r["gunicorn_config"], row)
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
    at50 = next((d for d in r["saves"].get("diagnostic", []) if d["concurrency"] == 50), None)
    figure = "save overhead p50 / p99 at 50 agents (≈ 170 saves/s)"
    if at50 is None:
        row(figure, "not measured: --diagnostic without 50", "≤ 5 / ≤ 25 ms", None)
    else:
        rate = median([p["widget"]["throughput_per_s"] for p in at50["pairs"]])
        row(
            figure,
            f"{at50['overhead_p50_ms']:.1f} / {at50['overhead_p99_ms']:.1f} ms (median of "
            f"{len(at50['pairs'])} pairs; {rate:.0f} saves/s)",
            "≤ 5 / ≤ 25 ms",
            at50["overhead_p50_ms"] <= 5 and at50["overhead_p99_ms"] <= 25,
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
        for figure in ("first panel load", "repeat panel load", "time to enabled form",
                       "search box: work per keystroke"):  # fmt: skip
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
    keys = b.get("search_keystrokes")
    if keys:
        row(
            f"search box: work per keystroke, {keys['dispositions']} dispositions (p95)",
            f"{keys['work_p95_ms']:.1f} ms (median {keys['work_p50_ms']:.1f}, "
            f"{keys['keystrokes']} keystrokes; to the next frame p95 {keys['frame_p95_ms']:.0f})",
            "≤ 16 ms",
            keys["work_p95_ms"] <= 16,
        )
    return rows


def cpu_rows(c: dict, config: dict, row) -> None:
    """The two CPU figures of bench/outside.py, as rows (issue 21's bars; goals beside)."""
    ratio_figure = "widget CPU per panel load ÷ per hello request"
    save_figure = "widget CPU per save"
    if "skipped" in c:
        row(ratio_figure, f"not measured: {c['skipped']}", "≤ 2× (goal ≤ 1.25×)", None)
        row(save_figure, f"not measured: {c['skipped']}", "≤ 2 ms (goal ≤ 1 ms)", None)
        return
    how = (
        f"{len(c['runs'])} runs of {c['requests']} requests, {c['clients']} clients, "
        f"{config['workers']} workers each, CloudAgent answering at once"
    )
    # Each run's ratio sets panel and hello side by side in time: their median.
    spread = c["panel_over_hello"]
    ratio = spread["median"]
    row(
        ratio_figure,
        f"{ratio:.2f}× (median of the runs' ratios, {spread['min']:.2f}–{spread['max']:.2f}×; "
        f"median CPU per request {c['panel_ms']['median']:.3f} / {c['hello_ms']['median']:.3f}"
        f" ms, the threads' time on a CPU; {how})",
        "≤ 2× (goal ≤ 1.25×)",
        ratio <= 2,
    )
    save = c["save_ms"]
    row(
        save_figure,
        f"{save['median']:.2f} ms (runs {save['min']:.2f}–{save['max']:.2f} ms; same runs)",
        "≤ 2 ms (goal ≤ 1 ms)",
        save["median"] <= 2,
    )


def markdown(rows: list[dict]) -> str:
    """The table as printed (and pasted into docs/benchmarks.md)."""
    lines = ["| figure | measured | target | met? |", "| --- | --- | --- | --- |"]
    lines += [f"| {r['figure']} | {r['measured']} | {r['target']} | {r['met']} |" for r in rows]
    return "\n".join(lines)


def print_report(r: dict) -> None:
    """On stdout: the machine, config and source measured, the table, then the notes."""
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
