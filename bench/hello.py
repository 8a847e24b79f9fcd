"""The benchmark's yardstick: a bare Flask app with one route, served by the same gunicorn
config as the widget (`gunicorn -c gunicorn.conf.py bench.hello:app`): under the asgi worker
through the same a2wsgi thread pool as the widget's Flask app, so the ratio compares the apps
under one server configuration."""

import os

from a2wsgi import WSGIMiddleware
from flask import Flask

flask_app = Flask(__name__)


@flask_app.get("/hello")
def hello() -> str:
    return "hello"


_asgi = WSGIMiddleware(flask_app, workers=int(os.environ.get("WIDGET_THREADS", "64")))


def app(*args):  # WSGI (gthread) or ASGI (asgi), as wsgi.py's app
    return flask_app(*args) if len(args) == 2 else _asgi(*args)
