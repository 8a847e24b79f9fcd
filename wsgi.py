"""The entry point: `gunicorn -c gunicorn.conf.py wsgi:app`. `app` is WSGI and ASGI at once
(webapp.push.router): gthread workers call it as Flask, the `asgi` worker as ASGI."""

import os
import sys

from webapp import create_app
from webapp.config import ConfigError
from webapp.push import Router

try:
    flask_app = create_app()
except ConfigError as error:
    print(f"configuration error: {error}", file=sys.stderr)
    # 3 is gunicorn's "worker failed to boot": the master stops instead of respawning.
    sys.exit(3)
app = Router(flask_app, threads=int(os.environ.get("WIDGET_THREADS", "64")))
