"""Code run in spawned child processes by the shared-state tests (importable by name); the
Redis token store's multi-process saves use tests/procs.py's save_many."""


def prepare(url: str) -> int:
    from webapp.audit import prepare_schema

    return prepare_schema(url)
