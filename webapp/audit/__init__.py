"""The audit trail of every save attempt: written before CloudAgent is called, completed after.

- log.py: AuditLog, the rows the panel writes and the queries on them;
- schema.py: the tables, the schema version and the start-up migrations;
- sqlite.py, writelock.py, groupcommit.py: how many processes write one SQLite file fast and
  safely (PostgreSQL needs none of them);
- cli.py: `flask --app wsgi audit list|export|prune`.
"""

from .log import (
    UNKNOWN,
    Attempt,
    AuditLog,
    AuditUnavailable,
    Earlier,
    RateLimited,
    sqlite_url,
)
from .schema import COLUMNS, SCHEMA_VERSION, SchemaError, prepare_schema

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "UNKNOWN",
    "Attempt",
    "AuditLog",
    "AuditUnavailable",
    "Earlier",
    "RateLimited",
    "SchemaError",
    "prepare_schema",
    "sqlite_url",
]
