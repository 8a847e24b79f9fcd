"""The push channel: what CloudAgent says about a call, live in its open panel.

- hub.py: one worker's open streams by call, and the one reader that wakes them;
- stream.py: the server-sent events endpoint, a coroutine per open panel;
- router.py: the ASGI application gunicorn's `asgi` worker runs: that endpoint, and every
  other path to the unchanged Flask app in a thread pool (bridge.py).
"""

from .hub import CHANNEL, Hub
from .router import Router

__all__ = ["CHANNEL", "Hub", "Router"]
