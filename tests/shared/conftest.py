"""Fixtures of the several-instances tests over the real Redis and PostgreSQL servers that
tests/conftest.py starts (Debian's `redis-server` and `postgresql`, on free loopback ports in
temporary folders, stopped after; tests/helpers.py has the classes).

Missing binaries skip these tests loudly on a developer's machine and fail them under
CI=true (.ci/run installs the packages).
"""

import pytest

from tests.helpers import free_port


@pytest.fixture
def redis_url(redis_server):
    """The session's Redis, emptied for each test."""
    client = redis_server.client()
    client.flushall()
    client.close()
    return redis_server.url


@pytest.fixture
def down_redis_url():
    """A Redis URL where nothing listens."""
    return f"redis://127.0.0.1:{free_port()}/0"


@pytest.fixture
def pg_database(postgres_server):
    """A new, empty database for one test: its name."""
    return postgres_server.create_database()


@pytest.fixture
def pg_url(postgres_server, pg_database):
    return postgres_server.url(pg_database)
