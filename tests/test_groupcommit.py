"""Group commit: writes queued while a leader writes go out together in the next batch, each
caller learns of its own write only, and nothing queued is dropped on close."""

import threading
import time

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, create_engine, event, insert
from sqlalchemy.exc import IntegrityError, OperationalError

from webapp.groupcommit import GroupCommit

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


def wait_queued(group, count, timeout=5):
    deadline = time.monotonic() + timeout
    while len(group._queue) < count:
        assert time.monotonic() < deadline, f"only {len(group._queue)} writes queued"
        time.sleep(0.005)


def test_writes_queued_behind_the_lock_commit_together_each_with_its_own_result(engine):
    gate = threading.Lock()
    group = GroupCommit(engine, lambda: gate)
    gate.acquire()
    first, _ = run_all(group, [("first", add("first"))])
    while group._queue or not group._leading:  # "first" leads, and waits for the lock
        time.sleep(0.005)
    threads, results = run_all(group, [(f"n{i}", add(f"n{i}")) for i in range(20)])
    wait_queued(group, 20)
    gate.release()
    for thread in first + threads:
        thread.join(5)

    assert engine.commits == 2  # "first" alone, then the 20 queued behind it in one
    assert len(set(results.values())) == 20 and all(isinstance(v, int) for v in results.values())
    with engine.connect() as conn:
        by_id = {row.id: row.name for row in conn.execute(items.select())}
    assert all(by_id[row_id] == name for name, row_id in results.items())
    group.close()


def test_a_write_the_database_refuses_fails_alone(engine):
    GroupCommit(engine, threading.Lock).run(add("taken"))
    gate = threading.Lock()
    group = GroupCommit(engine, lambda: gate)
    gate.acquire()
    first, _ = run_all(group, [("first", add("first"))])
    while group._queue or not group._leading:
        time.sleep(0.005)
    writes = [("a", add("a")), ("dup", add("taken")), ("b", add("b"))]
    threads, results = run_all(group, writes)
    wait_queued(group, 3)
    gate.release()
    for thread in first + threads:
        thread.join(5)

    assert isinstance(results["dup"], IntegrityError)
    assert isinstance(results["a"], int) and isinstance(results["b"], int)
    assert names(engine) == ["a", "b", "first", "taken"]
    group.close()


def test_a_database_that_cannot_be_written_fails_every_waiting_write(engine):
    def broken(_conn):
        raise OperationalError("INSERT", {}, Exception("disk I/O error"))

    group = GroupCommit(engine, threading.Lock)
    with pytest.raises(OperationalError):
        group.run(broken)
    assert group.run(add("later")) > 0  # the writer is still there afterwards
    group.close()


def test_an_uncontended_write_is_made_by_its_own_thread(engine):
    threads = []

    def write(conn):
        threads.append(threading.current_thread())
        return add("alone")(conn)

    GroupCommit(engine, threading.Lock).run(write)
    assert threads == [threading.current_thread()]


def test_close_commits_what_is_queued_then_refuses_new_writes(engine):
    gate = threading.Lock()
    group = GroupCommit(engine, lambda: gate)
    gate.acquire()
    first, _ = run_all(group, [("q0", add("q0"))])
    while group._queue or not group._leading:
        time.sleep(0.005)
    threads, results = run_all(group, [(f"q{i}", add(f"q{i}")) for i in range(1, 5)])
    wait_queued(group, 4)
    group.close()
    gate.release()
    for thread in first + threads:
        thread.join(5)

    assert names(engine) == [f"q{i}" for i in range(5)]
    assert not group._leading and not group._queue
    assert sorted(results) == [f"q{i}" for i in range(1, 5)]
    assert all(isinstance(row_id, int) for row_id in results.values())
    with pytest.raises(RuntimeError):
        group.run(add("too late"))


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

    gate.acquire()
    first, _ = run_all(group, [("first", write("first"))])
    while group._queue or not group._leading:
        time.sleep(0.005)
    threads, results = run_all(group, [(f"w{i}", write(f"w{i}")) for i in range(3)])
    wait_queued(group, 3)
    gate.release()
    for thread in first + threads:
        thread.join(5)

    assert sorted(results) == ["w0", "w1", "w2"] and engine.commits == 2
    (batch_thread,) = {ran_on[f"w{i}"] for i in range(3)}
    if max_rounds == 1:  # the first leader handed over to one of the queued writers
        assert batch_thread in threads
    else:  # it went on to commit them itself
        assert batch_thread is first[0]
    assert not group._leading and not group._queue
