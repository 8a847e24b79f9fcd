"""The benchmark's yardstick: a bare Flask app with one route, served by the same gunicorn
config as the widget (`gunicorn -c gunicorn.conf.py bench.hello:app`): under the asgi worker
through the same thread-pool bridge as the widget's Flask app (webapp/push/bridge.py), so the
ratio compares the apps under one server configuration."""

import os

from flask import Flask

from webapp.push.bridge import ThreadedWSGI

flask_app = Flask(__name__)


@flask_app.get("/hello")
def hello() -> str:
    return "hello"


_asgi = ThreadedWSGI(flask_app, int(os.environ.get("WIDGET_THREADS", "64")))


def app(*args):  # WSGI (gthread) or ASGI (asgi), as wsgi.py's app
    return flask_app(*args) if len(args) == 2 else _asgi(*args)
