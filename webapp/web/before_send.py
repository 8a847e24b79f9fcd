"""The contract between the asgi bridge (webapp.push.bridge) and the app for work the app
leaves to the bridge's loop: environ[BEFORE_SEND], offered to GET requests, is a list of
functions each given the answer's headers (a list it may change) and body, returning the
body to send. Where the key is absent (a save, gthread, the test client) the app does the
work itself. A module of its own, so that neither side imports the other."""

from __future__ import annotations

from collections.abc import Callable

BEFORE_SEND = "widget.before_send"
Headers = list[tuple[bytes, bytes]]
BeforeSend = Callable[[Headers, bytes], bytes]

# app.extensions[ON_LOOP], when the app sets it: a function of a request's environ saying
# whether the bridge may run that request on its event loop rather than in a pool thread
# (webapp.panel.onloop). Absent, every request goes to the pool. A request the bridge runs
# on its loop has environ[ON_LOOP] set True: none of its reads may wait then (a wait would
# hold every connection of the worker), so each answers from memory whatever it holds.
ON_LOOP = "widget.on_loop"
