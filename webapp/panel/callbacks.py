"""Callback times: which dispositions need one, and reading, checking and writing it.

CloudAgent's Set takes `callBackTime` as `YYYY-MM-DD HH:MM`, read in the account's zone
(WIDGET_CLOUDAGENT_TIMEZONE). Its disposition list does not say which dispositions have
callbacks, so WIDGET_CALLBACK_DISPOSITIONS names them; by default, every name that says
"call back" or "callback".
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from datetime import time as day_start
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_skeleton, get_datetime_format
from markupsafe import Markup, escape

from ..i18n import N_

MAX_AHEAD = timedelta(days=30)
UPSTREAM_FORMAT = "%Y-%m-%d %H:%M"  # CloudAgent's callBackTime
TIME_SLOT = "{time}"  # where a day's spoken form takes the time, HH:MM (see CallbackRule.days)
# What the panel posts (YYYY-MM-DDTHH:MM, seconds from older browsers' datetime-local), or
# CloudAgent's own form, which a host page may use to prefill.
_LOCAL = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2})(?::([0-9]{2})(?:\.[0-9]{1,3})?)?"
)  # ASCII digits only: \d would take other scripts' digits too
_DEFAULT_RULE = re.compile(r"call\s*back", re.IGNORECASE)


def _exists(at: datetime) -> bool:
    """Whether a wall time happens in its zone: not one the clocks skip going forward (zoneinfo
    gives such a time an offset, but there and back through UTC it lands elsewhere)."""
    back = at.astimezone(UTC).astimezone(at.tzinfo)
    return back.replace(tzinfo=None, fold=0) == at.replace(tzinfo=None, fold=0)


class CallbackTimeError(ValueError):
    """A callback time that cannot be sent; `message` is the agent's (English: the form
    translates it)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def normal_name(name: str) -> str:
    """A disposition name as the rule compares it: case and extra spaces do not count."""
    return " ".join(name.split()).casefold()


@dataclass(frozen=True)
class CallbackField:
    dispositions: str  # JSON list of the names that need a time
    zone: str
    label: str


@lru_cache(maxsize=256)
def _needing(rule: CallbackRule, names: tuple[str, ...]) -> str:
    """The names on the list that need a callback time, as JSON; "" when none does."""
    needing = [name for name in names if rule.applies_to(name)]
    return json.dumps(needing) if needing else ""


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
        self._real_clock = clock == datetime.now  # a bound method: equal, never the same
        self._field: tuple[int, CallbackField] | None = None
        # language: (today, its options, when today ends in epoch seconds)
        self._days: dict[str, tuple[date, Markup, float]] = {}

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

    def field(self, names: tuple[str, ...]) -> CallbackField | None:
        """What the panel's callback field needs for this list, or None when no disposition
        on it has callbacks. The list's part is worked out once per list, the clock's each
        time."""
        needing = _needing(self, names)
        if not needing:
            return None
        # The zone's name moves with the clock (summer time): a panel opened in the same
        # minute reuses it.
        minute = int(time.time() // 60)
        kept = self._field
        if kept is not None and kept[0] == minute and kept[1].dispositions == needing:
            return kept[1]
        field = CallbackField(dispositions=needing, zone=self.zone_name, label=self.zone_label)
        self._field = (minute, field)  # one assignment: threads see the old pair or the new
        return field

    def days(self, language: str, translate: Callable[[str], str]) -> Markup:
        """The day list's options, today to 30 days ahead in the zone, as the agent reads
        them in `language` ("Sat, 5 Dec"; today's and tomorrow's say so, through `translate`,
        that language's gettext). Each option's value is the day as posted (YYYY-MM-DD) and
        its data-when the day's spoken form, as the outcome will write it, with TIME_SLOT for
        the time. Worked out once a day per language: a panel costs one clock reading (on the
        real clock, time.time() against the day's end: a zone's date costs ten times that)."""
        kept = self._days.get(language)
        if kept is not None and self._real_clock and time.time() < kept[2]:
            return kept[1]
        today = self.now().date()
        if kept is not None and kept[0] == today:
            return kept[1]
        locale = _locale(language)
        texts = (translate(N_("%(day)s (today)")), translate(N_("%(day)s (tomorrow)")))
        options = []
        for ahead in range(MAX_AHEAD.days + 1):
            day = today + timedelta(days=ahead)
            # Noon: the zone's name that day (a summer-time change is at night).
            at = datetime(day.year, day.month, day.day, 12, tzinfo=self.zone)
            shown = format_skeleton("MMMEd", at, tzinfo=self.zone, locale=locale)
            if ahead < len(texts):
                shown = texts[ahead] % {"day": shown}
            when = self._spoken(at, TIME_SLOT, locale)
            options.append(
                f'<option value="{day.isoformat()}" data-when="{escape(when)}">'
                f"{escape(shown)}</option>"
            )
        markup = Markup("".join(options))  # noqa: S704 (escaped above)
        ends = datetime.combine(today + timedelta(days=1), day_start(), self.zone).timestamp()
        self._days[language] = (today, markup, ends)  # one assignment, as in field()
        return markup

    def read(self, value: str) -> datetime:
        """The agent's callback time (YYYY-MM-DDTHH:MM, in the zone), checked: a time to
        come, at most 30 days ahead, that exists on the zone's clocks. Raises
        CallbackTimeError with the agent's message.

        Compared with now in UTC: aware datetimes sharing a zone compare by wall time, which
        is wrong across a daylight-saving change. A wall time the clocks repeat (the hour
        after they go back) is read as its first occurrence (fold=0), as CloudAgent, given
        only `YYYY-MM-DD HH:MM`, most likely reads it (java.time picks the earlier offset)."""
        match = _LOCAL.fullmatch(value.strip())
        try:
            if match is None:
                raise ValueError
            year, month, day, hour, minute = (int(part) for part in match.groups()[:5])
            at = datetime(year, month, day, hour, minute, tzinfo=self.zone)
        except ValueError:
            raise CallbackTimeError(N_("Enter the callback time as a date and a time.")) from None
        if not _exists(at):
            raise CallbackTimeError(
                N_(
                    "That time does not exist that day: the clocks go forward then. "
                    "Choose a later time."
                )
            )
        at_utc, now_utc = at.astimezone(UTC), self.now().astimezone(UTC)
        if at_utc <= now_utc:
            raise CallbackTimeError(
                N_("That callback time has passed. Choose a time in the future.")
            )
        if at_utc > now_utc + MAX_AHEAD:
            raise CallbackTimeError(N_("A callback can be at most 30 days ahead."))
        return at

    @staticmethod
    def upstream(at: datetime) -> str:
        """As CloudAgent takes it."""
        return at.strftime(UPSTREAM_FORMAT)

    def spoken(self, at: datetime, language: str = "en") -> str:
        """As the agent reads it, in their language's way (CLDR's): 29 Nov, 10:30 IST in
        English as India writes it, 29 नव॰, 10:30 IST in Hindi. 24-hour, as the field."""
        locale = _locale(language)
        return self._spoken(at, format_skeleton("Hm", at, tzinfo=at.tzinfo, locale=locale), locale)

    def _spoken(self, at: datetime, clock: str, locale: str) -> str:
        day = format_skeleton("MMMd", at, tzinfo=at.tzinfo, locale=locale)
        moment = get_datetime_format("short", locale=locale).format(clock, day)
        return f"{moment} {self._label(at)}"


def _locale(language: str) -> str:
    return "en_IN" if language == "en" else language  # English as India writes dates
