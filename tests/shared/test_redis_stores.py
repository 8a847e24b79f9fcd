"""The Redis implementations of the token store, the dispositions cache and the rate limiter,
against a real redis-server: the same semantics as the single-host stores, shared by several
processes, and safe when Redis goes away or comes back empty."""

import logging
import multiprocessing
import threading
import time

import pytest

from tests.helpers import (
    DID,
    READ_TIMEOUT,
    Clock,
    FakeFetch,
    check_the_conflict_rule,
    save_many,
    wait_for,
)
from webapp.cloudagent import (
    CloudAgentClient,
    DispositionList,
    MintBudgetExhausted,
    MintFailed,
    Outcome,
    RedisDispositionCache,
    RedisTokenStore,
    StoreUnavailable,
    Token,
    account_key,
)
from webapp.cloudagent.cache import FAILED_BACKOFF
from webapp.ratelimit import RedisRateLimiter
from webapp.stores import redis_client

ACCOUNT = "https://in1-ccaas-api.ozonetel.com|acme"


@pytest.fixture
def redis(redis_url):
    client = redis_client(redis_url)
    yield client
    client.close()


@pytest.fixture
def store(redis):
    return RedisTokenStore(redis)


def make_client(upstream, store, **extra):
    return CloudAgentClient(
        base_url=upstream.url,
        username="demo",
        api_key="demo-api-key",
        token_store=store,
        connect_timeout=30,
        read_timeout=READ_TIMEOUT,
        **extra,
    )


# -- the token store --------------------------------------------------------------------------


def test_keys_are_namespaced_and_never_hold_the_account_url(store, redis):
    store.replace(ACCOUNT, None, lambda: Token("t1", time.time() + 3600))
    keys = sorted(key.decode() for key in redis.keys("*"))
    assert keys == [f"widget:mints:{account_key(ACCOUNT)}", f"widget:token:{account_key(ACCOUNT)}"]
    assert all("ozonetel" not in key for key in keys)
    assert 0 < redis.ttl(f"widget:token:{account_key(ACCOUNT)}") <= 2 * 3600


def test_a_fresh_stored_token_is_reused_not_reminted(store):
    minted = []

    def mint():
        minted.append(1)
        return Token(f"t{len(minted)}", 10**10)

    first = store.replace(ACCOUNT, None, mint)
    assert RedisTokenStore(store.redis).current(ACCOUNT) == first  # another process sees it
    assert store.replace(ACCOUNT, None, mint) == first
    assert store.replace(ACCOUNT, "an-older-token", mint) == first
    assert store.replace(ACCOUNT, first.value, mint).value == "t2"
    assert len(minted) == 2


def test_failed_mints_use_budget_but_bad_credentials_only_hold_back(redis):
    clock = Clock(time.time())
    store = RedisTokenStore(redis, clock=clock)

    def lost():
        raise MintFailed("lost_answer")

    def refused():
        raise MintFailed("Invalid userName or apiKey", counted=False, hold=30)

    with pytest.raises(MintFailed):
        store.replace(ACCOUNT, None, lost)
    assert store.mints_in_window(ACCOUNT) == 1
    with pytest.raises(MintFailed):
        store.replace(ACCOUNT, None, refused)
    assert store.mints_in_window(ACCOUNT) == 1
    with pytest.raises(MintBudgetExhausted, match="cooldown"):
        store.replace(ACCOUNT, None, lost)
    clock.now += 31
    with pytest.raises(MintFailed):
        store.replace(ACCOUNT, None, lost)
    assert store.mints_in_window(ACCOUNT) == 2
    assert store.current(ACCOUNT) is None


def test_the_eleventh_attempt_in_a_rolling_hour_is_refused(redis):
    clock = Clock(time.time())
    store = RedisTokenStore(redis, clock=clock)
    for i in range(10):
        clock.now += 60
        store.replace(ACCOUNT, f"t{i - 1}", lambda i=i: Token(f"t{i}", clock.now + 3600))
    clock.now += 60
    with pytest.raises(MintBudgetExhausted, match="budget"):
        store.replace(ACCOUNT, "t9", lambda: Token("t10", clock.now + 3600))
    clock.now += 3600 - 10 * 60  # the first attempt leaves the window
    assert store.replace(ACCOUNT, "t9", lambda: Token("t10", clock.now + 3600)).value == "t10"


def test_two_conflicts_in_an_hour_stop_minting_for_a_while(redis, caplog):
    clock = Clock(time.time())
    check_the_conflict_rule(RedisTokenStore(redis, clock=clock), clock, caplog)
    # Shared: another instance sees the same state.
    clock.now += 60
    other = RedisTokenStore(redis, clock=clock)
    assert other.conflict_until(ACCOUNT) is None
    assert other.current(ACCOUNT).value == "t4"


def test_one_mint_for_many_processes_sharing_redis(upstream, simulator, redis_url):
    """4 processes (as if 4 instances) x 50 saves on 8 threads: one mint from no token, one
    after expiry, one after an outside mint."""
    call = simulator.start_call("agent1", DID)
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:

        def run_round():
            args = [(upstream.url, redis_url, call.ucid, DID, 50)] * 4
            return [kind for kinds in pool.starmap(save_many, args) for kind in kinds]

        assert run_round() == ["queued"] * 200
        simulator.expire_token("demo")
        assert run_round() == ["queued"] * 200
        simulator.rotate_token("demo")
        assert run_round() == ["queued"] * 200
    assert simulator.stats()["requests"]["generateToken"] == 3


def test_redis_down_is_store_unreachable_never_a_mint(upstream, simulator, down_redis_url):
    client = redis_client(down_redis_url)
    # Answered in about a second, not after redis-py's default ten retries: short socket
    # timeouts and one quick reconnect (settings, not a stopwatch: the machine may be slow).
    settings = client.connection_pool.connection_kwargs
    assert (settings["socket_connect_timeout"], settings["socket_timeout"]) == (1.0, 2.0)
    assert settings["retry"].get_retries() == 2
    store = RedisTokenStore(client)
    with pytest.raises(StoreUnavailable):
        store.current(ACCOUNT)
    with pytest.raises(StoreUnavailable):
        store.replace(ACCOUNT, None, lambda: pytest.fail("minted without the lock"))
    with pytest.raises(StoreUnavailable):
        store.ping()
    call = simulator.start_call("agent1", DID)
    outcome = make_client(upstream, store).set_disposition(
        agent_id="agent1", did=DID, ucid=call.ucid, disposition="Interested"
    )
    assert (outcome.kind, outcome.reason) == ("unavailable", "store_unreachable")
    assert "shared store is unreachable" in outcome.message
    assert "token" not in outcome.message.lower() and "sign" not in outcome.message.lower()
    assert not any(simulator.stats()["requests"].values())  # CloudAgent never asked


def test_saves_go_on_through_an_outage_and_one_mint_follows_a_restart(
    upstream, simulator, redis_server, redis_url
):
    """The process keeps its copy of a valid token while Redis is away; a token refused
    during the outage is answered 'store unreachable' (no mint without the lock); Redis comes
    back empty: exactly one mint for 8 threads that all need one."""
    client = make_client(upstream, RedisTokenStore(redis_client(redis_url)))
    call = simulator.start_call("agent1", DID)

    def save():
        return client.set_disposition(
            agent_id="agent1", did=DID, ucid=call.ucid, disposition="Interested"
        )

    assert save().kind == "queued"
    redis_server.kill()
    try:
        assert save().kind == "queued"  # the process's own copy of the token
        simulator.rotate_token("demo")
        assert save().reason == "store_unreachable"
    finally:
        redis_server.start()
    mints = simulator.stats()["requests"]["generateToken"]
    threads = [threading.Thread(target=save) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert simulator.stats()["requests"]["generateToken"] == mints + 1
    assert save().kind == "queued"


def test_a_lock_lost_with_a_restart_is_survived(redis_server, redis_url, caplog):
    store = RedisTokenStore(redis_client(redis_url))

    def slow_mint():
        redis_server.restart()  # the lock vanishes while we hold it
        return Token("t1", time.time() + 3600)

    caplog.set_level(logging.WARNING)
    assert store.replace(ACCOUNT, None, slow_mint).value == "t1"
    assert any("lock release failed" in r.getMessage() for r in caplog.records)
    assert store.current(ACCOUNT).value == "t1"


# -- the dispositions cache -------------------------------------------------------------------


OLD = DispositionList(names=("Old",))
NEW = DispositionList(names=("New", "Newer"))
DOWN = DispositionList(error=Outcome(kind="unavailable", message="down", reason="unreachable"))


class CountingRedis:
    """A Redis client that counts the commands it is asked for."""

    def __init__(self, client):
        self.client = client
        self.calls = 0

    def __getattr__(self, name):
        attribute = getattr(self.client, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            self.calls += 1
            return attribute(*args, **kwargs)

        return call


def caches(redis, fetch, count=2, **options):
    """`count` caches on one Redis, as in `count` instances."""
    options = {"ttl": 300, "local_ttl": 5} | options
    return [
        RedisDispositionCache(fetch, account=ACCOUNT, redis=redis, **options) for _ in range(count)
    ]


def eventually(cache, mono, expected, timeout=60.0):
    """Read through `cache`, moving its clock past the local TTL each time, until `expected`."""
    deadline = time.monotonic() + timeout
    while True:
        mono.now += 6
        if cache.get("a", "did1", "u") == expected:
            return
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_a_list_loaded_by_one_instance_is_served_by_the_others(redis):
    fetch = FakeFetch(OLD)
    one, two = caches(redis, fetch)
    assert one.get("a1", "did1", "u1") == OLD
    assert two.get("a2", "did1", "u2") == OLD
    assert one.get("a1", "did2", "u1") == OLD
    assert fetch.calls == 2  # one per DID, whichever instance asked


def test_concurrent_first_loads_in_several_instances_make_one_fetch(redis):
    fetch = FakeFetch(OLD, gate=threading.Event())
    instances = caches(redis, fetch, count=4)
    results = []
    threads = [
        threading.Thread(target=lambda c=c: results.append(c.get("a", "did1", "u")))
        for c in instances
        for _ in range(4)
    ]
    for t in threads:
        t.start()
    wait_for(fetch.entered.is_set, what="the first fetch")
    fetch.gate.set()  # every caller has started: the one fetch finishes now
    for t in threads:
        t.join()
    assert results == [OLD] * 16
    assert fetch.calls == 1


def test_a_panel_load_within_the_local_ttl_costs_no_redis_call(redis):
    counting = CountingRedis(redis)
    clock = Clock(1000.0)
    (cache,) = caches(counting, FakeFetch(OLD), count=1, monotonic=clock)
    cache.get("a", "did1", "u")
    before = counting.calls
    for _ in range(100):
        clock.now += 0.04
        assert cache.get("a", "did1", "u") == OLD
    assert counting.calls == before  # 4 s of panel loads: memory only
    clock.now += 1.1
    cache.get("a", "did1", "u")
    assert counting.calls == before + 1  # one GET after the local TTL


def test_a_stale_list_is_refreshed_once_across_instances(redis):
    wall, mono = Clock(time.time()), Clock(1000.0)
    fetch = FakeFetch(OLD, NEW, gate=threading.Event())
    fetch.gate.set()
    instances = caches(redis, fetch, count=3, clock=wall, monotonic=mono)
    assert instances[0].get("a", "did1", "u") == OLD
    fetch.gate.clear()  # the refresh waits until the test opens the gate
    wall.now += 301
    mono.now += 6
    assert [c.get("a", "did1", "u") for c in instances] == [OLD] * 3  # served stale
    fetch.gate.set()
    eventually(instances[2], mono, NEW)
    assert [c.get("a", "did1", "u") for c in instances] == [NEW] * 3
    assert fetch.calls == 2


def test_a_failed_refresh_keeps_the_stale_list_and_waits_before_trying_again(redis):
    wall, mono = Clock(time.time()), Clock(1000.0)
    fetch = FakeFetch(OLD, DOWN, NEW)
    one, two = caches(redis, fetch, clock=wall, monotonic=mono, refresh_lock=30)
    one.get("a", "did1", "u")
    wall.now += 301
    mono.now += 6
    assert one.get("a", "did1", "u") == OLD
    wait_for(lambda: fetch.calls == 2)
    mono.now += 6
    claims = []
    claim = two._claim
    two._claim = lambda prefix, did: claims.append(claim(prefix, did)) or claims[-1]
    assert two.get("a", "did1", "u") == OLD  # stale kept; the other instance does not retry:
    assert claims == [False]  # it asked to refresh and was told to wait
    assert fetch.calls == 2
    lock = f"widget:dispositions-refresh:{account_key(ACCOUNT)}:did1"
    assert 0 < redis.ttl(lock) <= 30  # nobody tries again for refresh_lock seconds ...
    redis.delete(lock)  # ... which have now passed
    mono.now += 6
    assert two.get("a", "did1", "u") == OLD  # starts the next refresh
    eventually(one, mono, NEW)
    assert fetch.calls == 3


def test_without_redis_the_cache_serves_memory_or_asks_cloudagent(down_redis_url, caplog):
    caplog.set_level(logging.WARNING)
    fetch = FakeFetch(OLD, DOWN, NEW)
    mono = Clock(1000.0)
    (cache,) = caches(redis_client(down_redis_url), fetch, count=1, monotonic=mono)
    assert cache.get("a", "did1", "u") == OLD  # straight from CloudAgent
    mono.now += 6
    assert cache.get("a", "did1", "u") == OLD  # memory
    assert fetch.calls == 1
    with pytest.raises(Exception, match="redis"):
        cache.ping()
    assert "Redis unreachable" in caplog.text


def test_without_redis_a_list_never_loaded_that_fails_keeps_its_back_off(down_redis_url):
    fetch = FakeFetch(DOWN, OLD)
    mono = Clock(1000.0)
    (cache,) = caches(redis_client(down_redis_url), fetch, count=1, monotonic=mono)
    for _ in range(5):  # panels and saves while both Redis and CloudAgent are down
        assert cache.get("a", "did1", "u") == DOWN
        mono.now += 0.5
    assert fetch.calls == 1  # one failure, then its back-off, as with Redis up
    mono.now += FAILED_BACKOFF
    assert cache.get("a", "did1", "u") == OLD  # asked again after the back-off
    assert cache.get("a", "did1", "u") == OLD  # then from memory
    assert fetch.calls == 2


def test_without_redis_concurrent_first_loads_make_one_fetch(down_redis_url):
    fetch = FakeFetch(OLD, gate=threading.Event())
    (cache,) = caches(redis_client(down_redis_url), fetch, count=1)
    results = []
    threads = [
        threading.Thread(target=lambda: results.append(cache.get("a", "did1", "u")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    wait_for(fetch.entered.is_set, what="the first fetch")
    fetch.gate.set()
    for t in threads:
        t.join()
    assert results == [OLD] * 8
    assert fetch.calls == 1


# -- the rate limiter -------------------------------------------------------------------------


def test_save_counts_are_shared_by_every_instance(redis):
    clock = Clock(6000.0)
    one, two = (RedisRateLimiter(redis, limit=3, window=60, clock=clock) for _ in range(2))
    assert [one.hit("save:a1"), two.hit("save:a1"), one.hit("save:a1")] == [0, 0, 0]
    clock.now += 20
    assert two.hit("save:a1") == 40  # the 4th in this window, counted across both
    assert one.hit("save:a2") == 0
    clock.now += 40
    assert one.hit("save:a1") == 0  # a new window
    assert 0 < redis.ttl("widget:rate:save:a1:101") <= 120


def test_the_limiter_counts_per_process_while_redis_is_away(down_redis_url, caplog):
    limiter = RedisRateLimiter(redis_client(down_redis_url), limit=2, window=60)
    assert [limiter.hit("k"), limiter.hit("k")] == [0, 0]
    assert limiter.hit("k") > 0
    assert "counting per process" in caplog.text
