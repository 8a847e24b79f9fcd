"""Which requests the asgi bridge may answer on its event loop (webapp.panel.onloop): a panel
whose dispositions list and recent choices are in memory now, the receivers off. Anything
that could wait (a list never loaded, recent choices due to be read again, a call state in
the database) is left to the pool."""

from urllib.parse import urlsplit

import pytest

from tests.helpers import DID, SUPPORT, launch_path
from webapp.cloudagent import DispositionCache, RedisDispositionCache
from webapp.cloudagent.client import DispositionList
from webapp.panel import recent as recent_module
from webapp.web.before_send import ON_LOOP

EVENTS_TOKEN = "events-token-for-onloop-tests-0123456789"


def environ_for(path: str, method: str = "GET") -> dict:
    parts = urlsplit(path)
    return {"REQUEST_METHOD": method, "PATH_INFO": parts.path, "QUERY_STRING": parts.query}


@pytest.fixture
def opened(app, web, simulator):
    """A panel opened once (through the pool, as its list and recent choices were not yet
    in memory); its launch path."""
    path = launch_path(simulator.start_call("agent1", DID).ucid)
    assert app.extensions[ON_LOOP](environ_for(path)) is False  # nothing in memory yet
    assert web.get(path).status_code == 200
    return path


def test_a_panel_whose_reads_are_in_memory_may_be_answered_on_the_loop(app, opened, simulator):
    on_loop = app.extensions[ON_LOOP]
    assert on_loop(environ_for(opened)) is True
    # Another call of the same agent on the same line: the same reads.
    assert on_loop(environ_for(launch_path(simulator.start_call("agent1", DID).ucid))) is True


def test_a_panel_that_would_read_what_is_not_in_memory_goes_to_the_pool(app, opened, simulator):
    on_loop = app.extensions[ON_LOOP]
    ucid = simulator.start_call("agent2", DID).ucid
    assert on_loop(environ_for(launch_path(ucid, "agent2"))) is False  # agent2's recent choices
    ucid = simulator.start_call("agent1", SUPPORT).ucid
    assert on_loop(environ_for(launch_path(ucid, did=SUPPORT))) is False  # a list never loaded


@pytest.mark.parametrize(
    "change",
    [
        lambda e: e | {"REQUEST_METHOD": "POST"},
        lambda e: e | {"REQUEST_METHOD": "HEAD"},
        lambda e: e | {"PATH_INFO": "/disposition/form"},
        lambda e: e | {"QUERY_STRING": e["QUERY_STRING"].replace("did=", "x=")},
        lambda e: e | {"QUERY_STRING": e["QUERY_STRING"].replace("agentID=", "x=")},
        lambda e: e | {"QUERY_STRING": ""},
    ],
)
def test_only_a_panel_s_own_link_is_taken(app, opened, change):
    on_loop = app.extensions[ON_LOOP]
    assert on_loop(environ_for(opened)) is True
    assert on_loop(change(environ_for(opened))) is False


def test_a_link_with_escapes_is_read_for_where_the_view_will_look(app, opened):
    on_loop = app.extensions[ON_LOOP]
    escaped = environ_for(
        opened.replace("agentID=agent1", "agentID=%61gent1") + "&accent=%23aa0000"
    )
    assert on_loop(escaped) is True
    assert on_loop(environ_for(opened.replace("agentID=agent1", "agentID=%61gent2"))) is False


def test_recent_choices_due_to_be_read_again_go_to_the_pool(app, web, simulator, monkeypatch):
    on_loop = app.extensions[ON_LOOP]
    now = [1000.0]
    monkeypatch.setattr(app.extensions["recent"], "clock", lambda: now[0])
    path = launch_path(simulator.start_call("agent3", DID).ucid, "agent3")
    assert web.get(path).status_code == 200  # read at 1000
    now[0] += recent_module.TTL - 0.01
    assert on_loop(environ_for(path)) is True
    now[0] += 0.02
    assert on_loop(environ_for(path)) is False  # due: the view would read the audit log


def test_with_the_receivers_on_no_panel_is_taken(make_app):
    # Each panel then reads its call's state from the database.
    assert make_app(WIDGET_EVENTS_TOKEN=EVENTS_TOKEN).extensions[ON_LOOP] is None


def test_a_list_is_held_once_loaded_and_while_stale():
    now = [0.0]
    cache = DispositionCache(
        lambda *_: DispositionList(names=("Sale",)), account="acme", ttl=10, clock=lambda: now[0]
    )
    assert not cache.holds(DID)
    cache.get("agent1", DID, "u1")
    assert cache.holds(DID) and not cache.holds(SUPPORT)
    now[0] = 60.0  # stale: answered at once while a thread refreshes it
    assert cache.holds(DID)


def test_a_shared_list_is_held_while_this_process_s_copy_is_current():
    class Redis:
        def __init__(self):
            self.data = {}

        def get(self, key):
            return self.data.get(key)

        def set(self, key, value, ex=None, nx=False):
            if nx and key in self.data:
                return None
            self.data[key] = value
            return True

        def delete(self, key):
            self.data.pop(key, None)

    now = [100.0]
    cache = RedisDispositionCache(
        lambda *_: DispositionList(names=("Sale",)), account="acme", redis=Redis(),
        ttl=300, local_ttl=5, clock=lambda: now[0], monotonic=lambda: now[0],
    )  # fmt: skip
    assert not cache.holds(DID)
    assert cache.get("agent1", DID, "u1").names == ("Sale",)
    assert cache.holds(DID)
    now[0] += 5 - 0.01
    assert cache.holds(DID)
    now[0] += 0.02  # the copy is due to be checked against Redis
    assert not cache.holds(DID)
    redis_reads = []
    cache.redis.get = lambda key: redis_reads.append(key)
    assert cache.get("agent1", DID, "u1", wait=False).names == ("Sale",)  # the copy, as it is
    assert redis_reads == []
    assert cache.get("agent1", DID, "u1").names == ("Sale",)  # may wait: asks Redis
    assert redis_reads


def test_recent_choices_not_held_are_none_on_the_loop_and_read_otherwise(app):
    recent = app.extensions["recent"]
    reads = []
    recent.audit.recent_dispositions = lambda *args: reads.append(args) or ["Sale"]
    assert recent.get("agent9", DID, wait=False) == ()  # dropped or never read: no read
    assert reads == []
    assert recent.get("agent9", DID) == ("Sale",)
    assert len(reads) == 1 and recent.holds("agent9", DID)
