"""Callback times: which dispositions need one, and reading, checking and writing it.

CloudAgent's Set takes `callBackTime` as `YYYY-MM-DD HH:MM`, read in the account's zone
(WIDGET_CLOUDAGENT_TIMEZONE). Its disposition list does not say which dispositions have
callbacks, so WIDGET_CALLBACK_DISPOSITIONS names them; by default, every name that says
"call back" or "callback".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

MAX_AHEAD = timedelta(days=30)
UPSTREAM_FORMAT = "%Y-%m-%d %H:%M"  # CloudAgent's callBackTime
# What a datetime-local input sends (seconds only if its step allows them), or CloudAgent's own
# form, which a host page may use to prefill.
_LOCAL = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,3})?)?"
)  # ASCII digits only: \d would take other scripts' digits too
_DEFAULT_RULE = re.compile(r"call\s*back", re.IGNORECASE)


class CallbackTimeError(ValueError):
    """A callback time that cannot be sent; str() is the agent's message."""


def normal_name(name: str) -> str:
    """A disposition name as the rule compares it: case and extra spaces do not count."""
    return " ".join(name.split()).casefold()


class CallbackRule:
    def __init__(
        self,
        names: Iterable[str] = (),
        zone: str = "Asia/Kolkata",
        *,
        clock: Callable[[ZoneInfo], datetime] = datetime.now,
    ) -> None:
        self.names = frozenset(normal_name(n) for n in names)  # empty: the default rule
        self.zone_name = zone
        self.zone = ZoneInfo(zone)
        self._clock = clock

    def applies_to(self, disposition: str) -> bool:
        if self.names:
            return normal_name(disposition) in self.names
        return bool(_DEFAULT_RULE.search(disposition))

    def now(self) -> datetime:
        return self._clock(self.zone)

    @property
    def zone_label(self) -> str:
        """The zone as agents read it now: IST, CET, or UTC+04 where it has no abbreviation."""
        return self._label(self.now())

    def _label(self, at: datetime) -> str:
        name = at.tzname() or self.zone_name
        return f"UTC{name}" if name[:1] in "+-" else name

    def earliest(self) -> datetime:
        """The first minute a callback may be set for: the next whole minute."""
        return self.now().replace(second=0, microsecond=0) + timedelta(minutes=1)

    def latest(self) -> datetime:
        return self.now() + MAX_AHEAD

    def read(self, value: str) -> datetime:
        """The agent's callback time (a datetime-local value, in the zone), checked: a time to
        come, at most 30 days ahead. Raises CallbackTimeError with the agent's message."""
        match = _LOCAL.fullmatch(value.strip())
        try:
            if match is None:
                raise ValueError
            year, month, day, hour, minute = (int(part) for part in match.groups()[:5])
            at = datetime(year, month, day, hour, minute, tzinfo=self.zone)
        except ValueError:
            raise CallbackTimeError("Enter the callback time as a date and a time.") from None
        now = self.now()
        if at <= now:
            raise CallbackTimeError("That callback time has passed. Choose a time in the future.")
        if at > now + MAX_AHEAD:
            raise CallbackTimeError("A callback can be at most 30 days ahead.")
        return at

    @staticmethod
    def upstream(at: datetime) -> str:
        """As CloudAgent takes it."""
        return at.strftime(UPSTREAM_FORMAT)

    @staticmethod
    def local_input(at: datetime) -> str:
        """As a datetime-local input takes it."""
        return at.strftime("%Y-%m-%dT%H:%M")

    def spoken(self, at: datetime) -> str:
        """As the agent reads it: 29 Nov, 10:30 IST."""
        return f"{at.day} {at:%b}, {at:%H:%M} {self._label(at)}"
