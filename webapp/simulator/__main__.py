"""`python -m webapp.simulator`: serve the simulator with a threaded werkzeug server."""

from __future__ import annotations

import argparse

from werkzeug.serving import run_simple

from .app import create_app
from .server import RequestHandler
from .state import DEMO_API_KEY, DEMO_USERNAME, SUPPORT_DID, Simulator


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m webapp.simulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds per API answer")
    parser.add_argument("--wrapup-seconds", type=float, default=30.0)
    args = parser.parse_args(argv)

    sim = Simulator(latency=args.latency, wrapup_seconds=args.wrapup_seconds)
    print(f"CloudAgent simulator on http://{args.host}:{args.port}")
    print(f"  userName={DEMO_USERNAME}  apiKey={DEMO_API_KEY}  agents=agent1..agent3")
    print(f"  DIDs=914071327663, 918069000000, {SUPPORT_DID} (a long list)")
    print("  Subscribe API under /events/, control API under /sim/")
    # Threaded so the latency setting delays requests without serialising them.
    run_simple(args.host, args.port, create_app(sim), threaded=True, request_handler=RequestHandler)


if __name__ == "__main__":
    main()
