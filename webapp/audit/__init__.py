"""The audit trail of every save attempt: written before CloudAgent is called, completed after.

- log.py: AuditLog, the rows the panel writes and the queries on them;
- schema.py: the tables, the schema version and the start-up migrations;
- sqlite.py, writelock.py, groupcommit.py: how many processes write one SQLite file fast and
  safely (PostgreSQL needs none of them);
- journal.py: completions the database would not take, on local disk until replayed;
- settle.py: rows a lost worker left open, and what became of `unknown` saves;
- cli.py: `flask --app wsgi audit list|export|prune`.
"""

from .journal import JOURNAL_NAME, Journal
from .log import (
    UNKNOWN,
    Attempt,
    AuditLog,
    AuditUnavailable,
    Earlier,
    RateLimited,
    prepare_database,
    sqlite_url,
)
from .schema import COLUMNS, SCHEMA_VERSION, DatabaseUnreachable, SchemaError, prepare_schema

__all__ = [
    "COLUMNS",
    "SCHEMA_VERSION",
    "UNKNOWN",
    "JOURNAL_NAME",
    "Attempt",
    "AuditLog",
    "AuditUnavailable",
    "DatabaseUnreachable",
    "Journal",
    "Earlier",
    "RateLimited",
    "SchemaError",
    "prepare_database",
    "prepare_schema",
    "sqlite_url",
]
