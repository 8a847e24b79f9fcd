"""Serving the simulator over real HTTP from a background thread (demo mode and tests)."""

from __future__ import annotations

import threading
from typing import Any

from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server

from .app import UNDERSCORE_HEADERS, create_app
from .state import Simulator


class RequestHandler(WSGIRequestHandler):
    """Werkzeug's handler, keeping the header names with an underscore that it drops (the
    Subscribe API's `api_key`) in environ[UNDERSCORE_HEADERS], lower-cased."""

    def make_environ(self) -> dict[str, Any]:
        environ = super().make_environ()
        environ[UNDERSCORE_HEADERS] = {
            name.lower(): value for name, value in self.headers.items() if "_" in name
        }
        return environ


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

    def stop(self) -> None:
        super().stop()
        self.simulator.close()  # its deliveries stop with the server


def start_server(
    simulator: Simulator | None = None, host: str = "127.0.0.1", port: int = 0
) -> SimulatorServer:
    """Serve a simulator (a new demo one unless given) on a free loopback port, threaded."""
    simulator = simulator or Simulator()
    server = make_server(
        host, port, create_app(simulator), threaded=True, request_handler=RequestHandler
    )
    return SimulatorServer(simulator, server)


def serve_in_thread() -> tuple[Simulator, str]:
    running = start_server()
    return running.simulator, running.url
