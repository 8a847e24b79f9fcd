import pytest

from webapp.cloudagent import CloudAgentClient, SqliteTokenStore
from webapp.simulator import Simulator
from webapp.simulator.server import start_server

DID = "914071327663"


@pytest.fixture
def simulator():
    return Simulator()


@pytest.fixture
def upstream(simulator):
    """The simulator served over real HTTP on a loopback port."""
    running = start_server(simulator)
    yield running
    running.stop()


@pytest.fixture
def token_store(tmp_path):
    return SqliteTokenStore(tmp_path / "tokens.sqlite3")


@pytest.fixture
def make_client(upstream, token_store):
    def make(**overrides):
        options = dict(
            base_url=upstream.url,
            username="demo",
            api_key="demo-api-key",
            token_store=token_store,
            connect_timeout=2,
            read_timeout=2,
        )
        return CloudAgentClient(**(options | overrides))

    return make


@pytest.fixture
def client(make_client):
    return make_client()


@pytest.fixture
def live_call(simulator):
    return simulator.start_call("agent1", DID)
