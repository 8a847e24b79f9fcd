"""Code run in spawned child processes by the shared-state tests (importable by name)."""

from concurrent.futures import ThreadPoolExecutor

from webapp.cloudagent import CloudAgentClient
from webapp.cloudagent.tokens import RedisTokenStore
from webapp.stores import redis_client


def save_many_on_redis(url: str, redis_url: str, ucid: str, did: str, calls: int) -> list[str]:
    """One 'instance' process: its own client and Redis connection, `calls` saves on 8
    threads."""
    client = CloudAgentClient(
        base_url=url,
        username="demo",
        api_key="demo-api-key",
        token_store=RedisTokenStore(redis_client(redis_url)),
        connect_timeout=5,
        read_timeout=30,
    )

    def save(i: int) -> str:
        outcome = client.set_disposition(
            agent_id="agent1", did=did, ucid=ucid, disposition="Interested", comments=f"#{i}"
        )
        return outcome.kind

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(save, range(calls)))


def prepare(url: str) -> int:
    from webapp.audit import prepare_schema

    return prepare_schema(url)
