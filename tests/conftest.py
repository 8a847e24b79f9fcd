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


LAUNCH_SECRET = "launch-secret-for-tests-0123456789"
CRM_ORIGIN = "https://crm.example.com"


def widget_env(upstream_url, data_dir, **extra):
    return {
        "WIDGET_CLOUDAGENT_URL": upstream_url,
        "WIDGET_CLOUDAGENT_USERNAME": "demo",
        "WIDGET_CLOUDAGENT_API_KEY": "demo-api-key",
        "WIDGET_SECRET_KEY": "secret-key-for-tests-0123456789",
        "WIDGET_LAUNCH_SECRET": LAUNCH_SECRET,
        "WIDGET_FRAME_ANCESTORS": CRM_ORIGIN,
        "WIDGET_DATA_DIR": str(data_dir),
        "WIDGET_CLOUDAGENT_READ_TIMEOUT": "2",
    } | extra


@pytest.fixture
def app(upstream, tmp_path):
    from webapp import create_app

    return create_app(widget_env(upstream.url, tmp_path))


@pytest.fixture
def web(app):
    return app.test_client()
