"""Group commit: writes queued while a leader writes go out together in the next batch, each
caller learns of its own write only, and a write's own error fails it alone."""

import threading
import time

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, insert
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from webapp.audit.groupcommit import GroupCommit

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String(20), nullable=False, unique=True),
)


@pytest.fixture
def engine(tmp_path):
    engine = create_engine(f"sqlite:///{tmp_path / 'g.sqlite3'}")
    metadata.create_all(engine)
    engine.commits = 0

    @event.listens_for(engine, "commit")
    def count(_conn):
        engine.commits += 1

    yield engine
    engine.dispose()


def add(name):
    return lambda conn: conn.execute(insert(items).values(name=name)).inserted_primary_key[0]


def names(engine):
    with engine.connect() as conn:
        return sorted(row.name for row in conn.execute(items.select()))


def run_all(group, writes):
    """Submit each write from a thread of its own; results (or errors) by name."""
    results = {}

    def submit(name, write):
        try:
            results[name] = group.run(write)
        except Exception as error:  # noqa: BLE001 - the test inspects it
            results[name] = error

    threads = [threading.Thread(target=submit, args=item) for item in writes]
    for thread in threads:
        thread.start()
    return threads, results


def wait_queued(group, count, timeout=60):
    deadline = time.monotonic() + timeout
    while len(group._queue) < count:
        assert time.monotonic() < deadline, f"only {len(group._queue)} writes queued"
        time.sleep(0.005)


def queued_behind_a_leader(group, gate, first, writes):
    """`first` leads and waits for the held `gate`; `writes` queue behind it; then the gate
    opens and everything finishes. The leader's thread, and the queued writes' results."""
    gate.acquire()
    leader, _ = run_all(group, [("first", first)])
    while group._queue or not group._leading:  # "first" leads, and waits for the gate
        time.sleep(0.005)
    threads, results = run_all(group, writes)
    wait_queued(group, len(writes))
    gate.release()
    for thread in leader + threads:
        thread.join(60)
    return leader[0], threads, results


def test_writes_queued_behind_the_lock_commit_together_each_with_its_own_result(engine):
    gate = threading.Lock()
    group = GroupCommit(engine, lambda: gate)
    writes = [(f"n{i}", add(f"n{i}")) for i in range(20)]
    _, _, results = queued_behind_a_leader(group, gate, add("first"), writes)

    assert engine.commits == 2  # "first" alone, then the 20 queued behind it in one
    assert len(set(results.values())) == 20 and all(isinstance(v, int) for v in results.values())
    with engine.connect() as conn:
        by_id = {row.id: row.name for row in conn.execute(items.select())}
    assert all(by_id[row_id] == name for name, row_id in results.items())


def test_a_write_the_database_refuses_fails_alone(engine):
    GroupCommit(engine, threading.Lock).run(add("taken"))
    gate = threading.Lock()
    group = GroupCommit(engine, lambda: gate)
    writes = [("a", add("a")), ("dup", add("taken")), ("b", add("b"))]
    _, _, results = queued_behind_a_leader(group, gate, add("first"), writes)

    assert isinstance(results["dup"], IntegrityError)
    assert isinstance(results["a"], int) and isinstance(results["b"], int)
    assert names(engine) == ["a", "b", "first", "taken"]


def test_a_database_that_cannot_be_written_fails_every_waiting_write(engine):
    def broken(_conn):
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    group = GroupCommit(engine, threading.Lock)
    with pytest.raises(OperationalError):
        group.run(broken)
    assert group.run(add("later")) > 0  # later writes still go through


def test_an_uncontended_write_is_made_by_its_own_thread(engine):
    threads = []

    def write(conn):
        threads.append(threading.current_thread())
        return add("alone")(conn)

    GroupCommit(engine, threading.Lock).run(write)
    assert threads == [threading.current_thread()]


class CountingLock:
    """A host lock stand-in that counts its holds, and can fail to be taken or released."""

    def __init__(self, fail_acquire=False, fail_release=False):
        self.holds, self.fail_acquire, self.fail_release = 0, fail_acquire, fail_release

    def __call__(self):
        return self

    def __enter__(self):
        if self.fail_acquire:
            raise OSError("ENOLCK")
        self.holds += 1

    def __exit__(self, *_exc):
        if self.fail_release:
            raise OSError("unlock failed")


def test_an_error_that_is_not_a_writes_fails_the_batch_without_retrying_each(engine):
    """No connection free (the pool timed out) or no lock: the writes are not run one by one,
    each waiting again; everyone waiting hears at once."""
    lock = CountingLock(fail_acquire=True)
    group = GroupCommit(engine, lock)
    with pytest.raises(OSError):
        group.run(add("a"))

    lock = CountingLock()
    group = GroupCommit(engine, lock)
    pool_timeout = PoolTimeout("QueuePool limit reached")
    original = engine.connect
    engine.connect = lambda: (_ for _ in ()).throw(pool_timeout)
    try:
        with pytest.raises(PoolTimeout):
            group.run(add("b"))
    finally:
        engine.connect = original
    assert lock.holds == 0 and names(engine) == []


def test_rows_committed_before_the_lock_failed_to_release_are_reported_once(engine):
    lock = CountingLock(fail_release=True)
    group = GroupCommit(engine, lock)
    first = group.run(add("a"))
    assert isinstance(first, int) and names(engine) == ["a"]
    assert lock.holds == 1


@pytest.mark.parametrize("max_rounds", [1, 8])
def test_a_leader_takes_along_what_queued_for_a_few_rounds_then_hands_over(engine, max_rounds):
    gate = threading.Lock()
    group = GroupCommit(engine, lambda: gate, max_rounds=max_rounds)
    ran_on = {}

    def write(name):
        def run(conn):
            ran_on[name] = threading.current_thread()
            return add(name)(conn)

        return run

    writes = [(f"w{i}", write(f"w{i}")) for i in range(3)]
    leader, threads, results = queued_behind_a_leader(group, gate, write("first"), writes)

    assert sorted(results) == ["w0", "w1", "w2"] and engine.commits == 2
    (batch_thread,) = {ran_on[f"w{i}"] for i in range(3)}
    if max_rounds == 1:  # the first leader handed over to one of the queued writers
        assert batch_thread in threads
    else:  # it went on to commit them itself
        assert batch_thread is leader
    assert not group._leading and not group._queue


def test_one_connection_serves_batch_after_batch_and_close_gives_it_back(engine):
    checkouts = []
    event.listen(engine, "checkout", lambda *args: checkouts.append(args[0]))
    group = GroupCommit(engine, threading.Lock)
    for name in ("a", "b", "c"):
        group.run(add(name))
    assert len(checkouts) == 1 and engine.pool.checkedout() == 1
    group.close()
    assert engine.pool.checkedout() == 0
    assert group.run(add("d")) > 0 and len(checkouts) == 2  # a later write takes another
    assert names(engine) == ["a", "b", "c", "d"]


def test_a_failed_batch_gives_its_connection_back_and_the_next_takes_a_fresh_one(engine):
    checkouts = []
    event.listen(engine, "checkout", lambda *args: checkouts.append(args[0]))
    group = GroupCommit(engine, threading.Lock)
    group.run(add("a"))

    def broken(conn):
        conn.execute(insert(items).values(name="lost"))
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    with pytest.raises(OperationalError):
        group.run(broken)
    assert engine.pool.checkedout() == 0
    group.run(add("b"))
    assert len(checkouts) == 2 and names(engine) == ["a", "b"]  # "lost" rolled back
