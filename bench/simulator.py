"""The benchmark's CloudAgent: the project's simulator in a process of its own.

    python -m bench.simulator --port 8101 --latency 0.3 --agents 600 --out calls.json

Two accounts: `bench` is the widget's (its agents bench0001... each have one live call on one of
the bench DIDs), `direct` is the baseline's (the load generator calls the simulator directly
with it, so the baseline's mint never kills the widget's token). The direct account's token is
minted here, once, at start. When everything is set up and the worker serves, the calls, DIDs
and credentials are written to --out as JSON.

It is never the bottleneck: it is served by gunicorn's gthread worker (one process, so one
simulator state; a thread per request in flight, from a pool), each request sleeps the
latency outside the simulator's lock, so hundreds of answers overlap, and connections are
kept alive as a real API's are. (werkzeug's server, used before, closes every connection
after one answer: each CloudAgent call then paid a new TCP connection on both sides, and
the simulator a new thread.) No request log; a listen backlog deep enough for hundreds of
agents connecting at once. The benchmark reports this process's CPU use in each phase, and
the direct baseline shows its service time (median answer minus the latency).
"""

from __future__ import annotations

import argparse
import json
import os
from typing import Any

from gunicorn.app.base import BaseApplication

from webapp.simulator.app import create_app
from webapp.simulator.state import Simulator

WIDGET_USER = "bench"
WIDGET_KEY = "bench-api-key-0123456789"
DIRECT_USER = "direct"
DIRECT_KEY = "direct-api-key-0123456789"
DIDS = ("914071327663", "918069000000")
DISPOSITIONS = ["Interested", "Not interested", "Call back later", "Wrong number", "Sale closed"]
# A line with a long list, for the search box's time per keystroke: 25 topics x 20 results.
SEARCH_DID = "918069500000"
SEARCH_AGENT = "benchsearch"
_TOPICS = ["Billing", "Refund", "Order", "Delivery", "Payment", "Account", "KYC", "Plan",
           "Subscription", "Complaint", "Technical", "Warranty", "Service visit", "Address",
           "Mobile number", "Email", "Password", "Card", "Loan", "Insurance", "Claim",
           "Appointment", "Return", "Exchange", "Survey"]  # fmt: skip
_RESULTS = ["enquiry", "resolved", "escalated", "pending", "callback requested",
            "information shared", "request raised", "request cancelled", "status shared",
            "documents requested", "documents received", "follow-up", "transferred",
            "not interested", "interested", "wrong department", "customer disconnected",
            "language barrier", "duplicate", "closed"]  # fmt: skip
LONG_LIST = [f"{topic} - {result}" for topic in _TOPICS for result in _RESULTS]
PAUSE_REASONS = ["Break", "Lunch", "Training", "Meeting", "Bio break"]


class Server(BaseApplication):
    """gunicorn, configured here rather than by a config file: the simulator's state is built
    in this process before the worker is forked, so the one worker serves it."""

    def __init__(self, app: Any, options: dict[str, Any]) -> None:
        self.app, self.options = app, options
        super().__init__()

    def load_config(self) -> None:
        for name, value in self.options.items():
            self.cfg.set(name, value)

    def load(self) -> Any:
        return self.app


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
            agents={*names, SEARCH_AGENT} if user == WIDGET_USER else set(names),
            dids={*DIDS, SEARCH_DID},
            dispositions=DISPOSITIONS,
            pause_reasons=PAUSE_REASONS,
            did_dispositions={SEARCH_DID: LONG_LIST},
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
        "search_call": {
            "agent": SEARCH_AGENT,
            "ucid": sim.start_call(SEARCH_AGENT, SEARCH_DID).ucid,
            "did": SEARCH_DID,
            "dispositions": len(LONG_LIST),
        },
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
    parser.add_argument("--threads", type=int, default=1024, help="requests in flight at most")
    args = parser.parse_args(argv)

    sim, info = build(args.latency, args.agents)
    info["url"] = f"http://{args.host}:{args.port}"
    info["pid"] = os.getpid()

    def post_worker_init(_worker: Any) -> None:  # in the worker, once it can serve
        tmp = args.out + ".tmp"
        with open(tmp, "w") as handle:
            json.dump(info, handle)
        os.replace(tmp, args.out)  # the bench waits for this file: it appears whole

    Server(
        create_app(sim),
        {
            "bind": f"{args.host}:{args.port}",
            "workers": 1,  # one simulator state
            "worker_class": "gthread",
            # Every request in flight sleeps on a thread: enough for the largest run's agents
            # and every widget thread together.
            "threads": args.threads,
            "worker_connections": 4 * args.threads,
            "backlog": 2048,
            "keepalive": 30,
            "timeout": 120,
            "accesslog": None,
            "errorlog": "-",
            "loglevel": "warning",
            "control_socket_disable": True,
            "graceful_timeout": 2,
            "post_worker_init": post_worker_init,
        },
    ).run()


if __name__ == "__main__":
    main()
