"""`flask --app wsgi audit ...`: read the audit trail, export it as CSV or JSON lines, or
prune what is older than its retention."""

from __future__ import annotations

import csv
import json
import sys
import time
import unicodedata
from datetime import UTC, datetime
from typing import Any, TextIO

import click
from flask import current_app
from flask.cli import with_appcontext

from .log import AuditLog
from .schema import COLUMNS

FORMATS = ("table", "csv", "jsonl")


def _timestamp(value: datetime | None) -> float | None:
    if value is None:
        return None
    return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat(timespec="milliseconds")


def _readable(row: dict[str, Any]) -> dict[str, Any]:
    return row | {"started_at": _iso(row["started_at"]), "finished_at": _iso(row["finished_at"])}


# A cell a spreadsheet would run as a formula (CSV injection) gets a leading quote: one that
# starts with a formula character, its full-width form (Excel reads ＝1+1 as =1+1), or any of
# them after leading blanks or invisible characters, which spreadsheets skip.
_FORMULA = "=+-@\uff1d\uff0b\uff0d\uff20"
_HIDDEN = ("Cc", "Cf", "Zl", "Zp")  # controls, format characters (bidi, zero-width), separators


def _invisible(char: str) -> bool:
    return char.isspace() or unicodedata.category(char) in _HIDDEN


def _cell(value: Any) -> Any:
    if not isinstance(value, str) or not value:
        return value
    start = next((char for char in value if not _invisible(char)), " ")
    if unicodedata.category(value[0]) == "Cc" or start in _FORMULA:  # Cc: tab, CR as before
        return "'" + value
    return value


def _escaped(char: str) -> str:
    code = ord(char)
    return f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}"


def _shown(value: Any) -> str:
    """A value for the listing: controls, line separators and invisible format characters
    (bidi marks and overrides, zero-width characters, BOM) escaped, so none can forge or hide
    a line."""
    text = str(value)
    if text.isprintable() and text.isascii():
        return text
    return "".join(_escaped(c) if unicodedata.category(c) in _HIDDEN else c for c in text)


def _write(rows: Any, fmt: str, out: TextIO) -> int:
    count = 0
    if fmt == "csv":
        writer = csv.DictWriter(out, fieldnames=COLUMNS)
        writer.writeheader()
    for row in rows:
        row = _readable(row)
        count += 1
        if fmt == "csv":
            writer.writerow({name: _cell(value) for name, value in row.items()})
        elif fmt == "jsonl":
            out.write(json.dumps(row, ensure_ascii=False) + "\n")  # JSON escapes controls
        else:
            shown = {name: _shown(row[name]) for name in ("agent", "ucid", "outcome")}
            if row.get("settled"):  # what became of an unknown save, beside what was said
                shown["outcome"] += "/" + _shown(row["settled"])
            out.write(
                f"{row['started_at']}  {shown['agent']:<12} {shown['ucid']:<20} "
                f"{shown['outcome']:<17} {_shown(row['disposition'])}\n"
            )
    return count


DATES = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S", "%Y-%m-%dT%H:%M"]


@click.group(help="The audit trail of save attempts (times are UTC).")
def audit() -> None:
    pass


def _filters(command: Any) -> Any:
    for option in reversed(
        [
            click.option("--since", type=click.DateTime(DATES), help="from this time (UTC)"),
            click.option("--until", type=click.DateTime(DATES), help="before this time (UTC)"),
            click.option("--agent", help="only this agent ID"),
            click.option("--ucid", help="only this call"),
            click.option("--limit", type=click.IntRange(min=1), help="at most this many rows"),
            click.option(
                "--unsettled",
                is_flag=True,
                help="only rows still open, or unknown with nothing learned since",
            ),
        ]
    ):
        command = option(command)
    return command


@audit.command("list", help="Show save attempts, oldest first.")
@_filters
@with_appcontext
def list_command(**filters: Any) -> None:
    _run("table", sys.stdout, **filters)


@audit.command("export", help="Export save attempts as CSV or JSON lines.")
@click.option("--format", "fmt", type=click.Choice(["csv", "jsonl"]), default="csv")
@click.option("--output", "-o", type=click.File("w", encoding="utf-8"), default="-")
@_filters
@with_appcontext
def export_command(fmt: str, output: TextIO, **filters: Any) -> None:
    _run(fmt, output, **filters)


def _run(fmt: str, out: TextIO, *, since: Any, until: Any, **filters: Any) -> None:
    log: AuditLog = current_app.extensions["audit"]
    rows = log.rows(since=_timestamp(since), until=_timestamp(until), **filters)
    count = _write(rows, fmt, out)
    click.echo(f"{count} attempt(s)", err=True)


@audit.command(
    "prune", help="Remove attempts older than WIDGET_AUDIT_RETENTION_DAYS, in small batches."
)
@click.option("--days", type=click.IntRange(min=1), help="keep this many days instead")
@click.option("--dry-run", is_flag=True, help="only say how many would be removed")
@with_appcontext
def prune_command(days: int | None, dry_run: bool) -> None:
    log: AuditLog = current_app.extensions["audit"]
    days = days or current_app.config["WIDGET"].audit_retention_days
    cutoff = time.time() - days * 86400
    count = log.prune(cutoff, dry_run=dry_run)
    verb = "would remove" if dry_run else "removed"
    click.echo(f"{verb} {count} attempt(s) started before {_iso(cutoff)} (older than {days} days)")
