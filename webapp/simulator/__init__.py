"""A CloudAgent simulator speaking CloudAgent's HTTP API, for tests, demos and benchmarks.

`flask --app webapp.simulator run` finds `create_app` here.
"""

from .app import create_app
from .faults import Fault
from .server import ServerThread, SimulatorServer, serve_in_thread, start_server
from .state import Account, Call, Simulator

__all__ = [
    "Account",
    "Call",
    "Fault",
    "ServerThread",
    "Simulator",
    "SimulatorServer",
    "create_app",
    "serve_in_thread",
    "start_server",
]
