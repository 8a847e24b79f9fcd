"""The request's log line: written without a logging record when our handler is the only one
that would see it (production), through logging otherwise (tests' capture, an operator's
config), the same JSON either way."""

import io
import json
import logging
import sys
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
