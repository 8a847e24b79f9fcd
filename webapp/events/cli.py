"""`flask --app wsgi audit unconfirmed --older-than 10m` and `audit mismatches`: the saves
CloudAgent never confirmed, and the calls where it kept another disposition than the
widget's latest save. Plain lines, one per row, with controls escaped (times are UTC)."""

from __future__ import annotations

import json
import re
import time
from typing import Any

import click
from flask import current_app
from flask.cli import with_appcontext

from ..audit.cli import DATES, _iso, _shown, _timestamp
from .store import EventStore

_AGE = re.compile(r"([0-9]+)\s*([smhd]?)")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class Age(click.ParamType):
    """A duration: `90s`, `10m`, `2h`, `1d` (a bare number is seconds)."""

    name = "age"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, int | float):
            return float(value)
        found = _AGE.fullmatch(str(value).strip().lower())
        if not found:
            self.fail(f"{value!r} is not an age like 90s, 10m, 2h or 1d", param, ctx)
        return float(int(found.group(1)) * _UNITS[found.group(2)])


def _store() -> EventStore:
    return current_app.extensions["call_events"]


def _emit(line: dict[str, Any], jsonl: bool) -> None:
    if jsonl:
        click.echo(json.dumps(line, ensure_ascii=False))
    else:
        click.echo("  ".join(_shown("" if v is None else v) for v in line.values()))


@click.command(
    "unconfirmed",
    help="Saves that went through (queued or saved) and that no CloudAgent call summary has "
    "confirmed, started more than --older-than ago, oldest first.",
)
@click.option("--older-than", "age", type=Age(), default="10m", show_default=True)
@click.option("--limit", type=click.IntRange(min=1), help="at most this many rows")
@click.option("--jsonl", is_flag=True, help="JSON lines instead of plain lines")
@with_appcontext
def unconfirmed(age: float, limit: int | None, jsonl: bool) -> None:
    count = 0
    for row in _store().unconfirmed(time.time() - age, limit=limit):
        count += 1
        line = {
            "started_at": _iso(row["started_at"]),
            "agent": row["agent"],
            "ucid": row["ucid"],
            "outcome": row["outcome"],
            "disposition": row["disposition"],
        }
        _emit(line, jsonl)
    click.echo(f"{count} save(s) not confirmed by CloudAgent", err=True)


@click.command(
    "mismatches",
    help="Calls whose CloudAgent summary named another disposition than the widget's latest "
    "queued or saved one (an automatic one included), oldest first.",
)
@click.option("--since", type=click.DateTime(DATES), help="received from this time (UTC)")
@click.option("--limit", type=click.IntRange(min=1), help="at most this many rows")
@click.option("--jsonl", is_flag=True, help="JSON lines instead of plain lines")
@with_appcontext
def mismatches(since: Any, limit: int | None, jsonl: bool) -> None:
    count = 0
    for row in _store().mismatches(since=_timestamp(since), limit=limit):
        count += 1
        line = {
            "received_at": _iso(row["received_at"]),
            "agent": row["agent"],
            "ucid": row["ucid"],
            "saved": row["expected"],
            "cloudagent": row["disposition"],
        }
        _emit(line, jsonl)
    click.echo(f"{count} call(s) where CloudAgent kept another disposition", err=True)
