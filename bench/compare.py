"""Two source trees' widgets side by side: which costs less CPU per panel load (or per save).
`python -m bench.compare OTHER_TREE` (about a minute; `make compare OTHER=...`).

`bench.outside` measures one tree, and its figures move by some ±5 % from one run to the next
on a shared machine: more than most single changes move them. Here both widgets run at once,
one worker each, under the same gunicorn.conf.py, against one simulator (latency 0) and the
same launch links. Each pair of phases (one on each server, in a random order) meets the same
machine, and the median of the pairs' differences reads a change of a few µs that separate
runs cannot tell from noise. CPU is the servers' threads' run time (schedstat, ns) over each
phase. A tree compared with itself reads within about ±6 µs of zero (the rig's own noise):
run a comparison both ways round, and trust a difference well past that.

OTHER_TREE is a checkout of this repository (a `git worktree add` of another commit, or a
copy with one part taken out: docs/benchmarks.md, "Fourth round", shows both uses); it is
served with this tree's virtualenv, so it must need no package this one lacks.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .common import free_port, say
from .load import open_panels
from .outside import AGENTS, Failed, Figures, phase
from .services import GUNICORN, ROOT, Running, Service, start_services, wait_gunicorn


@dataclass
class Side:
    """One widget server and what its requests carry (its own panels' save forms)."""

    name: str
    url: str
    master: int
    figures: Figures


@dataclass
class Compared:
    """CPU per request (µs) of each side, pair by pair."""

    this: list[float]
    other: list[float]

    def differences(self) -> list[float]:
        """Other minus this, pair by pair: below 0 where the other tree cost less."""
        return [b - a for a, b in zip(self.this, self.other, strict=True)]

    def summary(self) -> dict:
        differences = self.differences()
        return {
            "this_us": statistics.median(self.this),
            "other_us": statistics.median(self.other),
            "difference_us": statistics.median(differences),
            "other_cheaper_pairs": sum(d < 0 for d in differences),
            "pairs": len(differences),
        }


def _start_widget(
    name: str, tree: Path, running: Running, tmp: Path, services: list[Service]
) -> tuple[Service, str]:
    """A widget served from `tree` (appended to `services`) and its URL: the bench widget's
    environment and a port of its own. Both sides are started this way, so that neither is
    the one start_services made (and warmed) first. They share one data folder, as two
    masters of one instance would: one CloudAgent token between them (each minting its own
    would look like another system signing in, and saves would be refused)."""
    port = free_port()
    data = tmp / "compared-data"
    data.mkdir(exist_ok=True)
    env = running.widget_env | {
        "WIDGET_BIND": f"127.0.0.1:{port}",
        "WIDGET_DATA_DIR": str(data),
    }
    command = [GUNICORN, "-c", "gunicorn.conf.py", "wsgi:app"]
    widget = Service(f"{name} widget", command, env, tmp / f"{name}.log", cwd=tree)
    services.append(widget)
    url = f"http://127.0.0.1:{port}"
    wait_gunicorn(widget, url + "/healthz", running.config["workers"])
    return widget, url


def _side(name: str, url: str, master: int, running: Running) -> Side:
    calls = {a: running.calls[a] for a in running.agents[:AGENTS]}
    config = {
        "widget_calls": calls,
        "launch_secret": running.launch_secret,
        "widget_url": url,
        "disposition": running.sim_info["dispositions"][0],
    }
    forms = asyncio.run(open_panels(config, sorted(calls)))
    return Side(name, url, master, Figures(running, forms))


def _cpu_us(side: Side, what: str, requests: int, clients: int) -> float:
    figures = side.figures
    request = {"panel": figures.panel, "save": figures.save}[what]
    check = {"panel": figures.check_panel, "save": figures.check_save}[what]
    measured = asyncio.run(phase(side.url, side.master, requests, clients, request, check))
    return measured["run_ms"] * 1000


def compare(tree: Path, what: str, pairs: int, requests: int, clients: int, tmp: Path) -> Compared:
    services: list[Service] = []
    try:
        running = start_services(tmp, services, latency=0, agents=AGENTS, workers=1)
        running.widget.stop()  # idle from here on: both sides are started alike, below
        this, this_url = _start_widget("this", ROOT, running, tmp, services)
        other, other_url = _start_widget("other", tree, running, tmp, services)
        sides = [
            _side("this", this_url, this.proc.pid, running),
            _side("other", other_url, other.proc.pid, running),
        ]
        for side in sides:  # warm-up, not counted
            _cpu_us(side, what, requests, clients)
        result = Compared([], [])
        for index in range(pairs):
            order = sides[:]
            random.shuffle(order)
            measured = {}
            for side in order:
                side.figures.sign()  # links are valid for 10 minutes
                measured[side.name] = _cpu_us(side, what, requests, clients)
            result.this.append(measured["this"])
            result.other.append(measured["other"])
            say(
                f"  pair {index + 1}: this {measured['this']:.1f}, other "
                f"{measured['other']:.1f} µs per {what}"
            )
        return result
    finally:
        for service in reversed(services):
            service.stop()


def report(tree: Path, what: str, compared: Compared) -> str:
    s = compared.summary()
    return (
        f"CPU per {what}, one worker each, medians of {s['pairs']} pairs: this tree "
        f"({ROOT}) {s['this_us']:.1f} µs, the other ({tree}) {s['other_us']:.1f} µs. "
        f"Other minus this, the pairs' median: {s['difference_us']:+.1f} µs; the other "
        f"cost less in {s['other_cheaper_pairs']} of {s['pairs']} pairs."
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__)
    add = parser.add_argument
    add("other", type=Path, help="the other source tree (a checkout of this repository)")
    add("--what", choices=("panel", "save"), default="panel", help="what to load (panel)")
    add("--pairs", type=int, default=16, help="pairs of phases (16)")
    add("--requests", type=int, default=1500, help="requests per phase (1500)")
    add("--clients", type=int, default=8, help="concurrent keep-alive clients (8)")
    args = parser.parse_args(argv)
    if args.pairs < 1 or args.requests < 1 or args.clients < 1:
        parser.error("--pairs, --requests and --clients must be at least 1")
    tree = args.other.resolve()
    if not (tree / "wsgi.py").is_file() or not (tree / "gunicorn.conf.py").is_file():
        parser.error(f"{tree} is not a checkout of this repository (no wsgi.py)")
    tmp = Path(tempfile.mkdtemp(prefix="widget-compare-"))
    began = time.perf_counter()
    try:
        compared = compare(tree, args.what, args.pairs, args.requests, args.clients, tmp)
    except Failed as error:
        sys.exit(f"bench.compare: {error}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(report(tree, args.what, compared))
    print(f"{time.perf_counter() - began:.0f} s in all.")


if __name__ == "__main__":
    main()
