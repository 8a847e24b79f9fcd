"""The request's log line: written without a logging record when our handler is the only one
that would see it (production), through logging otherwise (tests' capture, an operator's
config), the same JSON either way."""

import io
import json
import logging
import sys
import threading
from contextlib import contextmanager

import pytest

from webapp.web import logs

FIELDS = {"method": "GET", "path": "/disposition", "status": 200, "agent": "agent1", "note": "é"}


@contextmanager
def root_handlers(*handlers, stderr=None):
    """The root logger's handlers, and stderr, for a while: pytest sets its own capture of
    both for each test phase, so this is done inside the test."""
    kept = logging.root.handlers, sys.stderr
    logging.root.handlers = list(handlers)
    sys.stderr = stderr or STDERR
    try:
        yield
    finally:
        logging.root.handlers, sys.stderr = kept


STDERR = io.StringIO()


@pytest.fixture
def alone():
    """Our handler configured, stderr a fresh buffer, and a count of the records made."""
    logs.configure()
    STDERR.seek(0)
    STDERR.truncate()
    stderr = STDERR
    made = []
    factory = logging.getLogRecordFactory()

    def counting(*args, **kwargs):
        made.append(args[0])
        return factory(*args, **kwargs)

    logging.setLogRecordFactory(counting)
    try:
        yield stderr, made
    finally:
        logging.setLogRecordFactory(factory)


def test_alone_the_line_is_written_without_a_record_and_reads_as_a_record_would(alone):
    stderr, made = alone
    with root_handlers():
        logs.log_request(FIELDS)
        assert made == []  # no record: the direct path
        logs.log.info("request", extra={"fields": FIELDS})  # the same line through logging
    assert made == ["webapp.request"]
    direct, through_logging = (json.loads(line) for line in stderr.getvalue().splitlines())
    assert list(direct) == list(through_logging)  # same fields, same order
    assert {**direct, "time": None} == {**through_logging, "time": None}
    assert direct["logger"] == "webapp.request" and direct["level"] == "INFO"
    assert '"note":"é"' in stderr.getvalue()  # as the formatter writes text: not escaped


def test_with_another_handler_anywhere_on_the_way_the_line_is_a_record(alone, monkeypatch):
    stderr, made = alone
    seen = []
    other = logging.Handler()
    other.emit = seen.append
    with root_handlers(other):
        logs.log_request(FIELDS)
    assert made == ["webapp.request"] and seen[0].fields == FIELDS
    assert json.loads(stderr.getvalue())["path"] == "/disposition"  # ours still writes it


def test_a_filter_or_a_raised_level_is_honoured(alone, monkeypatch):
    stderr, made = alone
    monkeypatch.setattr(logs.log, "filters", [lambda record: False])
    with root_handlers():
        logs.log_request(FIELDS)
    assert stderr.getvalue() == "" and made == ["webapp.request"]
    monkeypatch.setattr(logs.log, "filters", [])
    monkeypatch.setattr(logs.log, "level", logging.WARNING)
    logs.log.manager._clear_cache()
    try:
        with root_handlers():
            logs.log_request(FIELDS)
    finally:
        monkeypatch.undo()
        logs.log.manager._clear_cache()
    assert stderr.getvalue() == ""


def test_a_broken_stderr_never_fails_the_request(alone, monkeypatch):
    class Broken(io.StringIO):
        def write(self, text):
            raise BrokenPipeError

    _, made = alone
    monkeypatch.setattr(logging, "raiseExceptions", False)  # as logging does in production
    with root_handlers(stderr=Broken()):
        logs.log_request(FIELDS)  # no exception: logging's own path reported it
    assert made == ["webapp.request"]


def test_under_the_bridge_the_line_is_written_by_the_work_left_to_its_loop(alone):
    stderr, made = alone
    later = []
    with root_handlers():
        logs.log_request(FIELDS, later)
        assert stderr.getvalue() == "" and len(later) == 1  # nothing written yet
        headers = [(b"content-type", b"text/html")]
        assert later[0](headers, b"body") == b"body"  # the answer goes on unchanged
    assert headers == [(b"content-type", b"text/html")] and made == []
    [line] = stderr.getvalue().splitlines()
    assert {**json.loads(line), "time": None} == {
        "time": None, "level": "INFO", "logger": "webapp.request", "message": "request", **FIELDS
    }  # fmt: skip


def test_request_ids_are_random_and_read_from_the_os_a_batch_at_a_time(monkeypatch):
    reads = []
    real = logs.os.urandom
    monkeypatch.setattr(logs.os, "urandom", lambda n: reads.append(n) or real(n))
    ids = logs.RandomIds()
    first = [ids() for _ in range(logs.RandomIds.BATCH)]
    assert reads == [logs.RandomIds.SIZE * logs.RandomIds.BATCH]
    ids()
    assert len(reads) == 2
    assert all(len(i) == 32 and int(i, 16) >= 0 for i in first) and len(set(first)) == len(first)
    ids._forget()  # what a forked worker does first: the parent's unread ids are not its own
    ids()
    assert len(reads) == 3


def test_each_thread_reads_its_own_batch_of_request_ids(monkeypatch):
    reads = []
    real = logs.os.urandom
    monkeypatch.setattr(logs.os, "urandom", lambda n: reads.append(n) or real(n))
    ids = logs.RandomIds()
    here = ids()
    there = []
    thread = threading.Thread(target=lambda: there.append(ids()))
    thread.start()
    thread.join(30)
    assert len(reads) == 2 and there and there[0] != here
