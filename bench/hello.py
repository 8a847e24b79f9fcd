"""The benchmark's yardstick: a bare Flask app with one route, served by the same gunicorn
config as the widget (`gunicorn -c gunicorn.conf.py bench.hello:app`)."""

from flask import Flask

app = Flask(__name__)


@app.get("/hello")
def hello() -> str:
    return "hello"
