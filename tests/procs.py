"""Code run in child processes by the multi-process tests (spawned, so importable by name)."""

from concurrent.futures import ThreadPoolExecutor

from webapp.cloudagent import CloudAgentClient, SqliteTokenStore


def save_many(url: str, store: str, ucid: str, did: str, calls: int) -> list[str]:
    """One worker process: its own client and token store connection, `calls` saves on 8
    threads. `store` is a SQLite file, or a redis:// URL for the shared Redis store."""
    if store.startswith("redis://"):
        from webapp.cloudagent.tokens import RedisTokenStore
        from webapp.stores import redis_client

        token_store = RedisTokenStore(redis_client(store))
    else:
        token_store = SqliteTokenStore(store)
    client = CloudAgentClient(
        base_url=url,
        username="demo",
        api_key="demo-api-key",
        token_store=token_store,
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
