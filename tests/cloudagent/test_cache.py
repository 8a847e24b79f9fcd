"""The dispositions cache: fresh from memory, stale while one refresh runs, failures kept out."""

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from webapp.cloudagent import DispositionCache, DispositionList, Outcome


class FakeFetch:
    def __init__(self, *results, delay=0.0):
        self.results = list(results)
        self.calls = 0
        self.delay = delay
        self.done = threading.Event()

    def __call__(self, agent_id, did, ucid):
        self.calls += 1
        time.sleep(self.delay)
        result = self.results.pop(0) if len(self.results) > 1 else self.results[0]
        self.done.set()
        return result


OLD = DispositionList(names=("Old",))
NEW = DispositionList(names=("New",))
DOWN = DispositionList(error=Outcome(kind="unavailable", message="down", reason="unreachable"))


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def wait_for(predicate, timeout=5.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_a_fresh_entry_costs_no_fetch():
    fetch, clock = FakeFetch(OLD), Clock()
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=clock)
    assert cache.get("a1", "did1", "u1") == OLD
    clock.now += 299
    assert cache.get("a2", "did1", "u2") == OLD
    assert fetch.calls == 1


def test_entries_are_per_did():
    fetch = FakeFetch(OLD, NEW)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=Clock())
    assert cache.get("a1", "did1", "u1") == OLD
    assert cache.get("a1", "did2", "u1") == NEW
    assert fetch.calls == 2


def test_a_stale_entry_is_served_while_one_background_refresh_runs():
    clock = Clock()
    fetch = FakeFetch(OLD, NEW)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=clock)
    cache.get("a1", "did1", "u1")
    clock.now += 301
    fetch.delay = 0.2
    fetch.done.clear()
    assert cache.get("a1", "did1", "u1") == OLD  # served stale, not waiting
    assert cache.get("a1", "did1", "u1") == OLD  # no second refresh started
    wait_for(lambda: cache.get("a1", "did1", "u1") == NEW)
    assert fetch.calls == 2


def test_a_failed_refresh_keeps_the_stale_list_and_retries_later():
    clock = Clock()
    fetch = FakeFetch(OLD, DOWN, NEW)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=clock)
    cache.get("a1", "did1", "u1")
    clock.now += 301
    fetch.done.clear()
    assert cache.get("a1", "did1", "u1") == OLD
    wait_for(lambda: fetch.calls == 2 and not cache._entries[("acme", "did1")].refreshing)
    assert cache.get("a1", "did1", "u1") == OLD
    assert fetch.calls == 2  # no refresh on every load while CloudAgent is down
    clock.now += 31
    cache.get("a1", "did1", "u1")
    wait_for(lambda: cache.get("a1", "did1", "u1") == NEW)


def test_a_failed_first_load_is_not_cached():
    fetch = FakeFetch(DOWN, OLD)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=Clock())
    assert cache.get("a1", "did1", "u1") == DOWN
    assert cache.get("a1", "did1", "u1") == OLD


def get_at_once(cache, count):
    """`count` threads asking for the same DID's list at once; their answers."""
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(lambda _: cache.get("a", "did1", "u"), range(count)))


def test_concurrent_first_loads_wait_for_one_fetch():
    fetch = FakeFetch(OLD, delay=0.2)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=Clock())
    results = get_at_once(cache, 8)
    assert results == [OLD] * 8
    assert fetch.calls == 1


def test_callers_waiting_on_a_failing_first_load_share_its_failure():
    fetch = FakeFetch(DOWN, delay=0.3)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=time.monotonic)
    results = get_at_once(cache, 8)
    assert results == [DOWN] * 8
    assert fetch.calls == 1  # not eight fetches one after another
    fetch.results = [OLD]
    assert cache.get("a", "did1", "u") == OLD  # a later caller (Try again) fetches anew
