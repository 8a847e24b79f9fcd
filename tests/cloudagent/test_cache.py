"""The dispositions cache: fresh from memory, stale while one refresh runs, failures kept out."""

import itertools
import threading
from concurrent.futures import ThreadPoolExecutor

from tests.helpers import Clock, FakeFetch, wait_for
from webapp.cloudagent import DispositionCache, DispositionList, Outcome
from webapp.cloudagent.cache import FAILED_BACKOFF

OLD = DispositionList(names=("Old",))
NEW = DispositionList(names=("New",))
DOWN = DispositionList(error=Outcome(kind="unavailable", message="down", reason="unreachable"))


def test_a_fresh_entry_costs_no_fetch():
    fetch, clock = FakeFetch(OLD), Clock(1000.0)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=clock)
    assert cache.get("a1", "did1", "u1") == OLD
    clock.now += 299
    assert cache.get("a2", "did1", "u2") == OLD
    assert fetch.calls == 1


def test_entries_are_per_did():
    fetch = FakeFetch(OLD, NEW)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=Clock(1000.0))
    assert cache.get("a1", "did1", "u1") == OLD
    assert cache.get("a1", "did2", "u1") == NEW
    assert fetch.calls == 2


def test_a_stale_entry_is_served_while_one_background_refresh_runs():
    clock = Clock(1000.0)
    fetch = FakeFetch(OLD, NEW)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=clock)
    cache.get("a1", "did1", "u1")
    clock.now += 301
    fetch.gate = threading.Event()  # the refresh waits until the test opens the gate
    assert cache.get("a1", "did1", "u1") == OLD  # served stale, not waiting
    assert cache.get("a1", "did1", "u1") == OLD  # no second refresh started
    fetch.gate.set()
    wait_for(lambda: cache.get("a1", "did1", "u1") == NEW)
    assert fetch.calls == 2


def test_a_failed_refresh_keeps_the_stale_list_and_retries_later():
    clock = Clock(1000.0)
    fetch = FakeFetch(OLD, DOWN, NEW)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=clock)
    cache.get("a1", "did1", "u1")
    clock.now += 301
    assert cache.get("a1", "did1", "u1") == OLD
    wait_for(lambda: fetch.calls == 2 and not cache._entries[("acme", "did1")].refreshing)
    assert cache.get("a1", "did1", "u1") == OLD
    assert fetch.calls == 2  # no refresh on every load while CloudAgent is down
    clock.now += 31
    cache.get("a1", "did1", "u1")
    wait_for(lambda: cache.get("a1", "did1", "u1") == NEW)


def test_a_failed_first_load_is_kept_a_few_seconds_only():
    fetch, clock = FakeFetch(DOWN, OLD), Clock(1000.0)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=clock)
    assert cache.get("a1", "did1", "u1") == DOWN
    clock.now += FAILED_BACKOFF - 0.1
    assert cache.get("a1", "did1", "u1") == DOWN  # not asked again at once
    assert fetch.calls == 1
    clock.now += 0.2
    assert cache.get("a1", "did1", "u1") == OLD  # then asked again
    assert fetch.calls == 2


class Ticks:
    """The cache's queue numbers, counted: how many callers have taken their place in line."""

    def __init__(self):
        self.numbers = itertools.count()
        self.taken = 0

    def __next__(self):
        self.taken += 1
        return next(self.numbers)


def get_while_the_first_fetch_waits(cache, fetch, count):
    """`count` threads ask for the same DID's list; the first fetch is held until every one of
    them is in line for it, then let go. Their answers."""
    fetch.gate = threading.Event()
    cache._ticks = ticks = Ticks()
    with ThreadPoolExecutor(count) as pool:
        answers = [pool.submit(cache.get, "a", "did1", "u") for _ in range(count)]
        wait_for(lambda: fetch.entered.is_set() and ticks.taken >= count, what="every caller")
        fetch.gate.set()
        return [answer.result() for answer in answers]


def test_concurrent_first_loads_wait_for_one_fetch():
    fetch = FakeFetch(OLD)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=Clock(1000.0))
    results = get_while_the_first_fetch_waits(cache, fetch, 8)
    assert results == [OLD] * 8
    assert fetch.calls == 1


def test_callers_waiting_on_a_failing_first_load_share_its_failure():
    fetch, clock = FakeFetch(DOWN), Clock(1000.0)
    cache = DispositionCache(fetch, account="acme", ttl=300, clock=clock)
    results = get_while_the_first_fetch_waits(cache, fetch, 8)
    assert results == [DOWN] * 8
    assert fetch.calls == 1  # not eight fetches one after another
    fetch.results = [OLD]
    clock.now += FAILED_BACKOFF
    assert cache.get("a", "did1", "u") == OLD  # a later caller (Try again) fetches anew
