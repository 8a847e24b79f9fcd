"""The app's response class lists the very headers, and gives the very body, werkzeug's would
for every kind of answer (webapp.web.responses skips werkzeug's header copy and its body's
wrapping only where they would change nothing)."""

import pytest
from flask import Response as FlaskResponse
from werkzeug.test import create_environ

from webapp.web.responses import Response

BODY = b"<p>a panel</p>"


def answers():
    yield "a page", lambda: Response(BODY, content_type="text/html; charset=utf-8")
    yield (
        "a page with headers",
        lambda: Response(
            BODY, headers={"Content-Security-Policy": "default-src 'none'", "X-Request-ID": "ab"}
        ),
    )
    yield "a redirect", lambda: Response(b"", 302, headers={"Location": "/disposition?x=1"})
    yield "a 200 naming a Location", lambda: Response(BODY, headers={"Location": "/elsewhere"})
    yield "a Content-Location", lambda: Response(BODY, headers={"Content-Location": "/ü"})
    yield "no content", lambda: Response(b"", 204)
    yield "not modified", lambda: Response(BODY, 304)
    yield "a stream", lambda: Response(iter([b"a", b"b"]), mimetype="text/event-stream")
    yield "a body without its length", lambda: _without_length(Response(BODY))
    yield "a refusal", lambda: Response(BODY, 403)


def _without_length(response):
    del response.headers["Content-Length"]
    return response


@pytest.mark.parametrize(("kind", "make"), list(answers()), ids=[k for k, _ in answers()])
def test_the_headers_sent_are_werkzeug_s(kind, make):
    environ = create_environ("/disposition", "http://widget.example/")
    ours = make().get_wsgi_headers(environ).to_wsgi_list()
    theirs = FlaskResponse.get_wsgi_headers(make(), environ).to_wsgi_list()
    assert ours == theirs, kind


@pytest.mark.parametrize("method", ["GET", "HEAD", "POST"])
@pytest.mark.parametrize(("kind", "make"), list(answers()), ids=[k for k, _ in answers()])
def test_the_body_sent_is_werkzeug_s(kind, make, method):
    environ = create_environ("/disposition", "http://widget.example/", method=method)
    ours, theirs = make(), make()
    closed = []
    if kind == "a refusal":  # one that asks to hear of its close
        for response in (ours, theirs):
            response.call_on_close(lambda: closed.append(1))
    body = ours.get_app_iter(environ)
    expected = FlaskResponse.get_app_iter(theirs, environ)
    assert list(body) == list(expected), kind
    for iterable in (body, expected):
        if hasattr(iterable, "close"):
            iterable.close()
    assert closed == ([1, 1] if kind == "a refusal" else [])  # what call_on_close asked for


def test_a_page_s_body_is_handed_over_as_it_is():
    page = Response(BODY, content_type="text/html; charset=utf-8")
    environ = create_environ("/disposition", "http://widget.example/")
    assert page.get_app_iter(environ) is page.response == [BODY]


def test_the_app_answers_with_it(app):
    assert app.response_class is Response
