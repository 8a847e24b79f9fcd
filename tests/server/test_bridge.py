"""The Flask app under the asgi worker (webapp/push/bridge.py): the request's body read whole
in the loop, the answer gathered whole in a thread, one start and one body sent; bodies over
every limit answered by the app's own 413; a client gone before its body was whole, nothing.
Then the same on the production server: a save sent chunked, an oversized save and event."""

import asyncio
import gzip
import json
import sys
import threading
from urllib.parse import urlencode

import pytest
import requests
from flask import Flask

from tests.helpers import DID, hidden_value, http_scope, in_loop, launch_path
from webapp.push.bridge import MAX_BODY, LeftToLoop, Pool, ThreadedWSGI
from webapp.simulator import Simulator, start_server
from webapp.web import compression
from webapp.web.before_send import BEFORE_SEND

EVENTS_TOKEN = "events-token-for-bridge-tests-0123456789"


def run(app, scope, messages):
    """The ASGI messages `app` (a ThreadedWSGI) sends for `scope`, given the request's
    `messages`; and the environ the WSGI app saw (None if it was not called)."""
    sent = []
    incoming = list(messages)

    async def receive():
        return incoming.pop(0) if incoming else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    in_loop(lambda: app(scope, receive, send))
    return sent


class Recorder:
    """A WSGI app that keeps its environ and body and answers in pieces, write() included."""

    def __init__(self):
        self.calls = []

    def __call__(self, environ, start_response):
        body = environ["wsgi.input"].read()
        self.calls.append((environ, body))
        write = start_response("201 Created", [("X-Thing", "one"), ("Content-Type", "text/plain")])
        write(b"first,")
        return [b"second,", b"third"]


def test_the_answer_goes_out_whole_as_one_start_and_one_body():
    recorder = Recorder()
    sent = run(ThreadedWSGI(recorder, 2), http_scope(), [{"type": "http.request", "body": b""}])
    assert sent == [
        {
            "type": "http.response.start",
            "status": 201,
            "headers": [(b"x-thing", b"one"), (b"content-type", b"text/plain")],
        },
        {"type": "http.response.body", "body": b"first,second,third"},
    ]


def test_the_environ_is_what_a_wsgi_server_gives():
    recorder = Recorder()
    headers = [
        (b"content-type", b"application/x-www-form-urlencoded"),
        (b"content-length", b"7"),
        (b"x-request-id", b"abc"),
        (b"accept", b"text/html"),
        (b"accept", b"*/*"),
    ]
    scope = http_scope("POST", "/disposition/save", b"a=1&b=%20", headers)
    run(ThreadedWSGI(recorder, 2), scope, [{"type": "http.request", "body": b"x=1&y=2"}])
    [(environ, body)] = recorder.calls
    assert body == b"x=1&y=2"
    assert {k: environ[k] for k in (
        "REQUEST_METHOD", "PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT",
        "SERVER_PROTOCOL", "REMOTE_ADDR", "CONTENT_TYPE", "CONTENT_LENGTH", "HTTP_X_REQUEST_ID",
        "HTTP_ACCEPT", "SCRIPT_NAME",
    )} == {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/disposition/save", "QUERY_STRING": "a=1&b=%20",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "8000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "10.0.0.7", "CONTENT_TYPE": "application/x-www-form-urlencoded",
        "CONTENT_LENGTH": "7", "HTTP_X_REQUEST_ID": "abc", "HTTP_ACCEPT": "text/html,*/*",
        "SCRIPT_NAME": "",
    }  # fmt: skip
    assert environ["wsgi.url_scheme"] == "http" and environ["wsgi.multithread"] is True


@pytest.mark.parametrize("taken", [True, False])
def test_a_request_the_app_says_may_run_on_the_loop_runs_there_and_answers_the_same(taken):
    threads, asked = [], []

    def app(environ, start_response):
        threads.append(threading.current_thread())
        environ[BEFORE_SEND].append(lambda headers, body: body + b" and after")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"answered"]

    def on_loop(environ):
        asked.append((environ["REQUEST_METHOD"], environ["PATH_INFO"]))
        return taken

    async def serve():
        sent = []

        async def receive():
            return {"type": "http.request", "body": b""}

        async def send(message):
            sent.append(message)

        await ThreadedWSGI(app, 2, on_loop)(http_scope(path="/p"), receive, send)
        return threading.current_thread(), sent

    loop_thread, sent = in_loop(serve)
    assert asked == [("GET", "/p")]
    if taken:
        assert threads == [loop_thread]
    else:  # one of the bridge's pool threads
        assert threads[0] is not loop_thread and threads[0].name.startswith("wsgi_")
    assert [m.get("body") for m in sent] == [None, b"answered and after"]


def test_a_body_in_pieces_sent_chunked_is_read_whole():
    recorder = Recorder()
    pieces = [
        {"type": "http.request", "body": b"one,", "more_body": True},
        {"type": "http.request", "body": b"two,", "more_body": True},
        {"type": "http.request", "body": b"three", "more_body": False},
    ]
    scope = http_scope("POST", headers=[(b"transfer-encoding", b"chunked")])
    run(ThreadedWSGI(recorder, 2), scope, pieces)
    [(environ, body)] = recorder.calls
    # Its length stated: werkzeug reads it, and holds it to the route's limit by it.
    assert body == b"one,two,three" and environ["CONTENT_LENGTH"] == "13"
    assert "HTTP_TRANSFER_ENCODING" not in environ


def test_past_the_cap_the_rest_of_a_body_is_never_read():
    recorder = Recorder()
    chunk = b"x" * 10_000
    endless = [{"type": "http.request", "body": chunk, "more_body": True}] * 100  # ~1 MB
    run(ThreadedWSGI(recorder, 2), http_scope("POST"), endless)
    [(environ, body)] = recorder.calls
    assert len(body) == MAX_BODY + 1  # over every route's limit: the app answers 413
    assert environ["CONTENT_LENGTH"] == str(MAX_BODY + 1)


def test_a_body_declared_over_the_cap_is_not_read_at_all():
    recorder = Recorder()
    received = []

    async def receive():  # pragma: no cover - must not be called
        received.append(1)
        return {"type": "http.request", "body": b"x" * 1000, "more_body": True}

    async def send(message):
        pass

    scope = http_scope("POST", headers=[(b"content-length", str(10 * MAX_BODY).encode())])
    in_loop(lambda: ThreadedWSGI(recorder, 2)(scope, receive, send))
    [(environ, body)] = recorder.calls
    assert received == [] and body == b"" and environ["CONTENT_LENGTH"] == str(10 * MAX_BODY)


def test_header_names_are_matched_before_dashes_become_underscores():
    # A header spelt Content_Type (which a proxy may pass on) is not the Content-Type.
    recorder = Recorder()
    headers = [
        (b"content-type", b"text/plain"),
        (b"content_type", b"application/json"),
        (b"cookie", b"a=1"),
        (b"cookie", b"b=2"),
    ]
    body = [{"type": "http.request", "body": b"x"}]
    run(ThreadedWSGI(recorder, 2), http_scope("POST", headers=headers), body)
    [(environ, _)] = recorder.calls
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["HTTP_CONTENT_TYPE"] == "application/json"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"


def test_a_mount_point_is_cut_from_the_path_only_at_a_segment_boundary():
    recorder = Recorder()
    for path, script, info in [
        ("/widget/disposition", "/widget", "/disposition"),
        ("/widgets", "/widget", "/widgets"),
    ]:
        scope = http_scope(path=path) | {"root_path": script}
        run(ThreadedWSGI(recorder, 2), scope, [{"type": "http.request", "body": b""}])
        environ, _ = recorder.calls[-1]
        assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == (script, info)


def test_an_error_page_started_after_an_answer_replaces_it():
    def app(environ, start_response):
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"half an answer")
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            start_response("500 Internal Server Error", [("X-Err", "1")], sys.exc_info())
        return [b"error page"]

    sent = run(ThreadedWSGI(app, 2), http_scope(), [{"type": "http.request", "body": b""}])
    assert sent[0]["status"] == 500 and sent[0]["headers"] == [(b"x-err", b"1")]
    assert sent[1]["body"] == b"error page"


def test_work_the_app_leaves_to_the_loop_runs_there_in_order_before_the_answer_goes():
    threads = {}

    def app(environ, start_response):
        threads["app"] = threading.get_ident()

        def first(headers, body):
            threads["first"] = threading.get_ident()
            headers.append((b"x-first", b"1"))
            return body.upper()

        def second(headers, body):
            threads["second"] = threading.get_ident()
            assert headers[-1] == (b"x-first", b"1")  # the first one's change is seen
            return body + b"!"

        environ[BEFORE_SEND].extend([first, second])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"answer"]

    async def receive():
        threads["loop"] = threading.get_ident()
        return {"type": "http.request", "body": b""}

    sent = []

    async def send(message):
        sent.append(message)

    in_loop(lambda: ThreadedWSGI(app, 2)(http_scope(), receive, send))
    assert threads["first"] == threads["second"] == threads["loop"] != threads["app"]
    assert sent[0]["headers"] == [(b"content-type", b"text/plain"), (b"x-first", b"1")]
    assert sent[1]["body"] == b"ANSWER!"


@pytest.mark.parametrize("method, offered", [("GET", True), ("HEAD", False), ("POST", False)])
def test_only_reading_requests_may_leave_work_to_the_loop(method, offered):
    # A save's thread waits on the database and CloudAgent: its own write costs it little,
    # and in the loop it would make every connection of the worker wait.
    recorder = Recorder()
    run(ThreadedWSGI(recorder, 2), http_scope(method), [{"type": "http.request", "body": b""}])
    [(environ, _)] = recorder.calls
    assert (BEFORE_SEND in environ) is offered


def test_a_request_given_up_while_its_app_ran_still_runs_what_the_app_left_once():
    """The server cancels a request whose client went (after a grace period) while the app
    may still be running: its log line is then written by the app's thread, once."""
    release, ran = threading.Event(), []
    app_thread = []

    def app(environ, start_response):
        environ[BEFORE_SEND].append(lambda h, b: ran.append(threading.get_ident()) or b)
        app_thread.append(threading.get_ident())
        release.wait(30)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"nobody reads this"]

    sent = []

    async def send(message):
        sent.append(message)

    async def scenario():
        async def receive():
            return {"type": "http.request", "body": b""}

        bridge = ThreadedWSGI(app, 2)
        task = asyncio.ensure_future(bridge(http_scope(), receive, send))
        while not app_thread:  # the app is running in its thread
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        release.set()
        for _ in range(3000):  # up to 30 s for the app's thread to finish
            if ran:
                break
            await asyncio.sleep(0.01)

    in_loop(scenario)
    assert ran == app_thread and sent == []  # once, by the app's thread; nothing sent


@pytest.mark.parametrize("first", ["answered", "given up"])
def test_what_was_left_is_run_by_whichever_side_comes_last(first):
    later = LeftToLoop()
    if first == "answered":
        assert later.answered() is False  # the thread answered first: the loop will run it
        assert later.give_up() is True
    else:
        assert later.give_up() is False  # the loop gave up first: the thread will run it
        assert later.answered() is True


def test_a_page_is_gzipped_in_the_loop_and_its_length_is_the_gzips(monkeypatch):
    app = Flask(__name__)
    compression.init_app(app)
    page = "<p>" + "a panel " * 400 + "</p>"
    app.get("/page")(lambda: page)
    gzipped_in = []
    real = compression._gzip
    monkeypatch.setattr(
        compression, "_gzip", lambda data: gzipped_in.append(threading.get_ident()) or real(data)
    )
    loop = []

    async def receive():
        loop.append(threading.get_ident())
        return {"type": "http.request", "body": b""}

    sent = []

    async def send(message):
        sent.append(message)

    scope = http_scope("GET", "/page", headers=[(b"accept-encoding", b"gzip, br")])
    in_loop(lambda: ThreadedWSGI(app, 2)(scope, receive, send))
    headers = dict(sent[0]["headers"])
    assert gzipped_in == loop  # once, in the loop's thread
    assert headers[b"content-encoding"] == b"gzip" and headers[b"vary"] == b"Accept-Encoding"
    assert int(headers[b"content-length"]) == len(sent[1]["body"]) < len(page)
    assert gzip.decompress(sent[1]["body"]).decode() == page
    assert [name for name, _ in sent[0]["headers"]].count(b"content-length") == 1


@pytest.mark.parametrize(
    ("body", "content_type", "gzipped"),
    [
        ("<p>" + "a panel " * 400 + "</p>", "text/html; charset=utf-8", True),
        ('{"a": "' + "b" * 2000 + '"}', "Application/JSON", True),
        ("<p>short</p>", "text/html; charset=utf-8", False),  # under MIN_SIZE
        ("a {}" * 500, "text/css", False),  # not a page: assets are gzipped at start-up
    ],
)
def test_the_loop_gzips_pages_and_json_over_the_minimum_size_only(body, content_type, gzipped):
    app = Flask(__name__)
    compression.init_app(app)
    app.get("/page")(lambda: (body, {"Content-Type": content_type}))
    scope = http_scope("GET", "/page", headers=[(b"accept-encoding", b"gzip")])
    sent = run(ThreadedWSGI(app, 2), scope, [{"type": "http.request", "body": b""}])
    headers = dict(sent[0]["headers"])
    assert (headers.get(b"content-encoding") == b"gzip") is gzipped
    sent_body = gzip.decompress(sent[1]["body"]) if gzipped else sent[1]["body"]
    assert sent_body.decode() == body and int(headers[b"content-length"]) == len(sent[1]["body"])


def test_a_hook_failing_after_the_gzip_has_its_error_page_gzipped_once():
    """Flask runs every after_request hook again on the error page of one that failed: the
    page it sends must be gzipped once, and not from the first answer's pieces."""
    app = Flask(__name__)
    failures = [RuntimeError("a hook failed")]

    @app.after_request
    def fails_once(response):  # registered first: runs after compress
        if failures:
            raise failures.pop()
        return response

    compression.init_app(app)
    page = "<p>" + "a panel " * 400 + "</p>"
    error_page = "<p>" + "went wrong " * 300 + "</p>"

    @app.get("/page")
    def panel():
        response = app.response_class(page.encode())
        body = response.get_data()
        response.deflated = compression.Deflated((compression.deflate_text(body),), (), body)
        return response

    app.register_error_handler(500, lambda _error: (error_page, 500))
    scope = http_scope("GET", "/page", headers=[(b"accept-encoding", b"gzip")])
    sent = run(ThreadedWSGI(app, 2), scope, [{"type": "http.request", "body": b""}])
    headers = dict(sent[0]["headers"])
    assert sent[0]["status"] == 500 and headers[b"content-encoding"] == b"gzip"
    assert gzip.decompress(sent[1]["body"]).decode() == error_page
    assert int(headers[b"content-length"]) == len(sent[1]["body"])


def test_a_head_of_a_page_states_the_gzips_length_and_sends_no_body():
    app = Flask(__name__)
    compression.init_app(app)
    page = "<p>" + "a panel " * 400 + "</p>"
    app.get("/page")(lambda: page)
    scope = http_scope("HEAD", "/page", headers=[(b"accept-encoding", b"gzip")])
    sent = run(ThreadedWSGI(app, 2), scope, [{"type": "http.request", "body": b""}])
    headers = dict(sent[0]["headers"])
    assert headers[b"content-encoding"] == b"gzip" and sent[1]["body"] == b""
    assert int(headers[b"content-length"]) == len(compression._gzip(page.encode()))


def test_a_client_gone_before_its_body_was_whole_gets_nothing_and_runs_nothing():
    recorder = Recorder()
    cut = [{"type": "http.request", "body": b"disposition=Sa", "more_body": True}]
    sent = run(ThreadedWSGI(recorder, 2), http_scope("POST"), cut)  # then http.disconnect
    assert sent == [] and recorder.calls == []


# -- on the production server (gunicorn's asgi worker) ----------------------------------------


@pytest.fixture(scope="module")
def server(production_server, quiet_werkzeug):
    simulator = Simulator()
    upstream = start_server(simulator)
    try:
        server = production_server(
            upstream.url, name="bridge", workers=1, WIDGET_EVENTS_TOKEN=EVENTS_TOKEN
        )
        server.simulator = simulator
        yield server
    finally:
        upstream.stop()


def panel_form(server, ucid):
    html = requests.get(server.url + launch_path(ucid), timeout=30).text
    return {
        "context": hidden_value(html, "context"),
        "csrf_token": hidden_value(html, "csrf_token"),
        "disposition": "Interested",
        "comments": "sent chunked",
        "pause_reason": "",
    }


def test_a_save_sent_chunked_is_read_and_queued(server):
    ucid = server.simulator.start_call("agent1", DID).ucid
    body = urlencode(panel_form(server, ucid))

    def pieces():  # a generator body: requests sends it chunked, with no Content-Length
        yield body[:20].encode()
        yield body[20:].encode()

    answer = requests.post(
        server.url + "/disposition/save",
        data=pieces(),
        headers={"HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded"},
        timeout=30,
    )
    assert answer.status_code == 200 and 'data-outcome="queued"' in answer.text, answer.text


def test_a_panel_is_gzipped_and_logged_by_the_loop_as_the_app_would_have(server):
    """Under the bridge the loop gzips the panel and writes its log line (the pool thread
    makes no system call it can leave): the same answer on the wire, the line on disk
    before the answer."""
    ucid = server.simulator.start_call("agent1", DID).ucid
    answer = requests.get(
        server.url + launch_path(ucid), headers={"Accept-Encoding": "gzip"}, stream=True, timeout=30
    )
    packed = answer.raw.read(decode_content=False)
    assert answer.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in answer.headers["Vary"]
    assert int(answer.headers["Content-Length"]) == len(packed)
    page = gzip.decompress(packed).decode()
    assert hidden_value(page, "context") and "Interested" in page
    request_id = answer.headers["X-Request-ID"]
    logged = [
        json.loads(line)
        for line in server.log_path.read_text().splitlines()
        if line.startswith("{")
    ]
    lines = [x for x in logged if x["logger"] == "webapp.request" and x["request_id"] == request_id]
    assert len(lines) == 1 and lines[0]["path"] == "/disposition", lines
    assert lines[0]["status"] == 200 and lines[0]["request_id"] == request_id


@pytest.mark.parametrize("size", [20 * 1024, 2 * MAX_BODY])
def test_an_oversized_save_gets_the_apps_own_413_and_nothing_is_sent(server, size):
    ucid = server.simulator.start_call("agent1", DID).ucid
    form = panel_form(server, ucid) | {"comments": "x" * size}
    asked = server.simulator.stats()["requests"]["Set"]
    answer = requests.post(
        server.url + "/disposition/save", data=form, headers={"HX-Request": "true"}, timeout=30
    )
    assert answer.status_code == 413
    assert "X-Request-ID" in answer.headers  # the app's answer, through its logging and headers
    assert server.simulator.stats()["requests"]["Set"] == asked  # no Set sent


def test_an_oversized_save_sent_chunked_is_refused_whole(server):
    # No Content-Length to refuse it by: the bridge states the length it read, and the app
    # refuses the body by it, as one sent with its length.
    ucid = server.simulator.start_call("agent1", DID).ucid
    form = panel_form(server, ucid)
    asked = server.simulator.stats()["requests"]["Set"]
    for size in (20 * 1024, 2 * MAX_BODY):
        body = urlencode(form | {"comments": "x" * size}).encode()
        answer = requests.post(
            server.url + "/disposition/save",
            data=iter([body[:1000], body[1000:]]),
            headers={"HX-Request": "true", "Content-Type": "application/x-www-form-urlencoded"},
            timeout=30,
        )
        assert answer.status_code == 413, (size, answer.status_code, answer.text[:200])
    assert server.simulator.stats()["requests"]["Set"] == asked


@pytest.mark.parametrize("chunked", [False, True])
@pytest.mark.parametrize("size", [70 * 1024, 2 * MAX_BODY])
def test_an_oversized_event_gets_the_receivers_413(server, size, chunked):
    body = b"{" + b" " * size + b"}"
    answer = requests.post(
        f"{server.url}/cloudagent/events/{EVENTS_TOKEN}/call",
        data=iter([body[:100], body[100:]]) if chunked else body,
        headers={"Content-Type": "application/json"},
        timeout=30,
    )
    assert answer.status_code == 413 and answer.json() == {"result": "too_large"}


def test_the_cap_is_the_largest_limit_of_any_route():
    from webapp.events.parse import MAX_BODY as EVENTS_LIMIT
    from webapp.push import bridge

    assert bridge.MAX_BODY == EVENTS_LIMIT  # one byte more is read: the route answers 413


def test_the_pool_starts_threads_as_the_work_needs_them_and_no_more():
    pool = Pool(4, "test")
    started = threading.Barrier(4, timeout=30)
    names = []

    def job(number):
        names.append(threading.current_thread().name)
        if number < 4:
            started.wait()  # four at once: each needs a thread of its own
        return number * 2

    async def main():
        together = await asyncio.gather(*(pool.run(job, n) for n in range(4)))
        more = await asyncio.gather(*(pool.run(job, n) for n in range(4, 40)))
        one_by_one = [await pool.run(job, n) for n in range(40, 50)]
        return together + more + one_by_one

    assert in_loop(main) == [n * 2 for n in range(50)]
    assert len(set(names)) == 4 and all(name.startswith("test_") for name in names)


def test_one_job_after_another_needs_one_thread():
    pool = Pool(8, "one")
    names = set()

    async def main():
        for n in range(20):
            await pool.run(lambda _: names.add(threading.current_thread().name), n)

    in_loop(main)
    assert len(names) == 1


def test_a_jobs_error_is_raised_where_its_result_is_awaited_and_the_pool_goes_on():
    pool = Pool(2, "errors")

    def job(number):
        if number == 1:
            raise ValueError("no")
        return number

    async def main():
        results = await asyncio.gather(
            *(pool.run(job, n) for n in range(3)), return_exceptions=True
        )
        return results, await pool.run(job, 5)

    (first, failed, third), after = in_loop(main)
    assert (first, third, after) == (0, 2, 5)
    assert isinstance(failed, ValueError) and str(failed) == "no"


def test_a_request_gone_while_its_job_waited_is_not_run():
    pool = Pool(1, "gone")
    release = threading.Event()
    ran = []

    def job(number):
        ran.append(number)
        if number == 0:
            release.wait(30)
        return number

    async def main():
        busy = pool.run(job, 0)  # holds the one thread
        waiting = pool.run(job, 1)
        waiting.cancel()  # its request went: the ASGI task was cancelled
        release.set()
        assert await busy == 0
        assert await pool.run(job, 2) == 2

    in_loop(main)
    assert ran == [0, 2]
