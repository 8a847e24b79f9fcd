"""Every response's security headers and compression, on a bare app with only those two
layers: what a view set itself is kept, what it did not is added, once."""

from types import SimpleNamespace

import pytest
from flask import Flask, Response

from webapp.web import compression, headers

PAGE = "<p>" + "a panel " * 400 + "</p>"  # over compression.MIN_SIZE


@pytest.fixture
def client():
    app = Flask(__name__)
    app.config["WIDGET"] = SimpleNamespace(frame_ancestors_header="https://crm.example")
    headers.init_app(app, style_hashes="")
    compression.init_app(app)

    @app.get("/plain")
    def plain():
        return PAGE

    @app.get("/own")
    def own():
        return Response(
            PAGE,
            headers={
                "Content-Security-Policy": "default-src 'self'",
                "Cache-Control": "private, max-age=60",
                "Referrer-Policy": "origin",
                "Vary": "Cookie",
            },
        )

    @app.get("/encoded")
    def encoded():
        return Response(b"\x00" * 2000, headers={"Content-Encoding": "br"}, mimetype="text/html")

    return app.test_client()


def counts(response):
    return {name: len(response.headers.getlist(name)) for name, _ in response.headers}


def test_the_app_sets_each_header_once_when_the_view_set_none(client):
    answer = client.get("/plain", headers={"Accept-Encoding": "gzip, deflate, br, zstd"})
    assert answer.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "frame-ancestors https://crm.example" in answer.headers["Content-Security-Policy"]
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["X-Content-Type-Options"] == "nosniff"
    assert answer.headers["Cache-Control"] == "no-store"
    assert (
        answer.headers["Content-Encoding"] == "gzip" and answer.headers["Vary"] == "Accept-Encoding"
    )
    assert set(counts(answer).values()) == {1}


def test_what_the_view_set_is_kept_and_the_referrer_policy_is_always_ours(client):
    answer = client.get("/own", headers={"Accept-Encoding": "gzip"})
    assert answer.headers["Content-Security-Policy"] == "default-src 'self'"
    assert answer.headers["Cache-Control"] == "private, max-age=60"
    assert answer.headers["Referrer-Policy"] == "no-referrer"
    assert answer.headers["Vary"] == "Cookie, Accept-Encoding"
    assert set(counts(answer).values()) == {1}


@pytest.mark.parametrize("accept", ["", "identity", "gzip;q=0, br", "br"])
def test_no_gzip_unless_the_browser_takes_it(client, accept):
    answer = client.get("/plain", headers={"Accept-Encoding": accept} if accept else {})
    assert "Content-Encoding" not in answer.headers and answer.text == PAGE


def test_an_answer_already_encoded_is_left_alone(client):
    answer = client.get("/encoded", headers={"Accept-Encoding": "gzip"})
    assert answer.headers["Content-Encoding"] == "br" and answer.data == b"\x00" * 2000
    assert answer.headers.getlist("Content-Encoding") == ["br"]
