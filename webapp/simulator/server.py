"""Serving the simulator over real HTTP from a background thread (demo mode and tests)."""

from __future__ import annotations

import threading

from werkzeug.serving import BaseWSGIServer, make_server

from .app import create_app
from .state import Simulator


class ServerThread:
    """A WSGI server running in a background thread: its base URL, and a way to stop it."""

    def __init__(self, server: BaseWSGIServer) -> None:
        self.server = server
        self.url = f"http://{server.host}:{server.port}"
        # A short poll interval lets stop() return at once (tests start and stop many).
        self._thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(5)


class SimulatorServer(ServerThread):
    """A running simulator: its state as well as its server."""

    def __init__(self, simulator: Simulator, server: BaseWSGIServer) -> None:
        super().__init__(server)
        self.simulator = simulator


def start_server(
    simulator: Simulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> SimulatorServer:
    """Serve a simulator (a new demo one unless given) on a free loopback port, threaded."""
    simulator = simulator or Simulator()
    server = make_server(host, port, create_app(simulator), threaded=True)
    return SimulatorServer(simulator, server)


def serve_in_thread() -> tuple[Simulator, str]:
    running = start_server()
    return running.simulator, running.url
