"""The benchmark's CloudAgent: the project's simulator in a process of its own.

    python -m bench.simulator --port 8101 --latency 0.3 --agents 600 --out calls.json

Two accounts: `bench` is the widget's (its agents bench0001... each have one live call on one of
the bench DIDs), `direct` is the baseline's (the load generator calls the simulator directly
with it, so the baseline's mint never kills the widget's token). The direct account's token is
minted here, once, at start. When everything is set up the calls, DIDs and credentials are
written to --out as JSON, and only then is the port served.

It is never the bottleneck: each request sleeps the latency outside the simulator's lock on a
thread of its own (werkzeug's threaded server, one thread per connection, keep-alive), so
hundreds of answers overlap; the request log is off, and the listen backlog is deep enough for
hundreds of connections opened at once. The benchmark reports this process's CPU use in each
phase, and the direct baseline shows its service time (median answer minus the latency).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys

from werkzeug.serving import ThreadedWSGIServer

from webapp.simulator.app import create_app
from webapp.simulator.state import Simulator

WIDGET_USER = "bench"
WIDGET_KEY = "bench-api-key-0123456789"
DIRECT_USER = "direct"
DIRECT_KEY = "direct-api-key-0123456789"
DIDS = ("914071327663", "918069000000")
DISPOSITIONS = ["Interested", "Not interested", "Call back later", "Wrong number", "Sale closed"]
PAUSE_REASONS = ["Break", "Lunch", "Training", "Meeting", "Bio break"]


class Server(ThreadedWSGIServer):
    # werkzeug listens with a backlog of 128: 500 agents connecting at once would overflow it
    # and wait a second for SYN retransmits, which is the kernel, not the simulator.
    request_queue_size = 2048


def agent_names(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n:04d}" for n in range(1, count + 1)]


def build(latency: float, agents: int) -> tuple[Simulator, dict]:
    sim = Simulator(latency=latency, seed=False, wrapup_seconds=3600)
    widget_agents = agent_names("bench", agents)
    direct_agents = agent_names("direct", agents)
    for user, key, names in (
        (WIDGET_USER, WIDGET_KEY, widget_agents),
        (DIRECT_USER, DIRECT_KEY, direct_agents),
    ):
        sim.add_account(
            user,
            key,
            agents=set(names),
            dids=set(DIDS),
            dispositions=DISPOSITIONS,
            pause_reasons=PAUSE_REASONS,
        )

    def calls(names: list[str]) -> dict[str, dict[str, str]]:
        out = {}
        for index, agent in enumerate(names):
            did = DIDS[index % len(DIDS)]
            out[agent] = {"ucid": sim.start_call(agent, did).ucid, "did": did}
        return out

    info = {
        "widget": {"username": WIDGET_USER, "api_key": WIDGET_KEY, "calls": calls(widget_agents)},
        "direct": {
            "username": DIRECT_USER,
            "token": sim.mint_token(DIRECT_USER),
            "calls": calls(direct_agents),
        },
        "dids": list(DIDS),
        "dispositions": DISPOSITIONS,
        "pause_reasons": PAUSE_REASONS,
        "latency": latency,
    }
    return sim, info


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--latency", type=float, default=0.3, help="seconds per API answer")
    parser.add_argument("--agents", type=int, default=600, help="agents per account")
    parser.add_argument("--out", required=True, help="where to write calls and credentials")
    args = parser.parse_args(argv)

    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # no line per request
    sim, info = build(args.latency, args.agents)
    server = Server(args.host, args.port, create_app(sim))
    info["url"] = f"http://{args.host}:{server.port}"
    info["pid"] = os.getpid()
    tmp = args.out + ".tmp"
    with open(tmp, "w") as handle:
        json.dump(info, handle)
    os.replace(tmp, args.out)  # the bench waits for this file: it appears whole
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    try:
        server.serve_forever(poll_interval=0.1)
    finally:
        server.server_close()


if __name__ == "__main__":
    main()
