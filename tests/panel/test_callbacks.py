"""Callback times: which dispositions need one, the checks on it (in the browser's absence),
and what reaches CloudAgent, the audit trail, the agent and the host page."""

import csv
import io
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import DID, outcome_of
from webapp.panel.callbacks import CallbackRule, CallbackTimeError

IST = ZoneInfo("Asia/Kolkata")
NOW = datetime(2026, 11, 28, 19, 30, 15, tzinfo=IST)


def rule(names=(), zone="Asia/Kolkata", now=NOW):
    return CallbackRule(names, zone, clock=lambda tz: now.astimezone(tz))


# -- the rule --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, needs",
    [
        ("Call back later", True),
        ("Call Back", True),
        ("Callback requested", True),
        ("Scheduled callback", True),
        ("CALL  BACK - customer busy", True),
        ("Interested", False),
        ("Called back already? No: back office", False),
        ("", False),
    ],
)
def test_by_default_every_name_saying_call_back_needs_a_time(name, needs):
    assert rule().applies_to(name) is needs


def test_a_configured_list_names_exactly_those_whatever_their_case_and_spacing():
    configured = rule(["Follow up", "Ring  back"])
    assert configured.applies_to("follow UP") and configured.applies_to("Ring back")
    assert not configured.applies_to("Call back later")  # the list replaces the default rule
    assert not configured.applies_to("Follow up later")


def test_the_zone_is_named_as_agents_read_it():
    assert rule().zone_label == "IST"
    assert rule(zone="Europe/Berlin").zone_label == "CET"  # November
    assert rule(zone="Europe/Berlin", now=NOW + timedelta(days=200)).zone_label == "CEST"
    assert rule(zone="Asia/Dubai").zone_label == "UTC+04"  # no abbreviation in tzdata


@pytest.mark.parametrize(
    "value, upstream",
    [
        ("2026-11-28T19:31", "2026-11-28 19:31"),  # the next minute
        ("2026-11-29T10:30", "2026-11-29 10:30"),
        ("2026-11-29 10:30", "2026-11-29 10:30"),  # CloudAgent's own form, from a prefill
        ("2026-11-29T10:30:00", "2026-11-29 10:30"),  # a browser that sends seconds
        ("2026-12-28T19:30", "2026-12-28 19:30"),  # 30 days ahead, to the minute
    ],
)
def test_a_time_to_come_within_30_days_is_taken_in_the_zone(value, upstream):
    at = rule().read(value)
    assert at.tzinfo == IST
    assert CallbackRule.upstream(at) == upstream


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "as a date and a time"),
        ("tomorrow", "as a date and a time"),
        ("10:30", "as a date and a time"),
        ("2026-02-30T10:30", "as a date and a time"),
        ("2026-11-29T24:00", "as a date and a time"),
        ("2026-11-29T10:30Z", "as a date and a time"),
        ("2026-11-29T10:30+05:30", "as a date and a time"),
        ("٢٠٢٦-١١-٢٩T10:30", "as a date and a time"),
        ("2026-11-28T19:30", "has passed"),  # this very minute
        ("2026-11-28T10:00", "has passed"),
        ("2025-11-29T10:30", "has passed"),
        ("2026-12-28T19:31", "at most 30 days"),
        ("2027-11-29T10:30", "at most 30 days"),
    ],
)
def test_anything_else_is_refused_in_the_agents_words(value, message):
    with pytest.raises(CallbackTimeError, match=message):
        rule().read(value)


def test_the_agent_reads_the_time_with_its_zone():
    assert rule().spoken(rule().read("2026-11-29T10:30")) == "29 Nov, 10:30 IST"
    dubai = rule(zone="Asia/Dubai")
    assert dubai.spoken(dubai.read("2026-12-01T09:05")) == "1 Dec, 09:05 UTC+04"


# -- the day list: the control shows the day as the outcome writes it ------------------------


def day_options(markup):
    """The day list's options: (value, data-when, text)."""
    return re.findall(r'<option value="([^"]*)" data-when="([^"]*)">([^<]*)</option>', markup)


def test_the_day_list_runs_from_today_to_30_days_ahead_in_the_zone_the_language_s_way():
    said = {"%(day)s (today)": "%(day)s (आज)", "%(day)s (tomorrow)": "%(day)s (कल)"}
    english = day_options(rule().days("en", lambda text: text))
    assert len(english) == 31
    assert english[0] == ("2026-11-28", "28 Nov, {time} IST", "Sat, 28 Nov (today)")
    assert english[1] == ("2026-11-29", "29 Nov, {time} IST", "Sun, 29 Nov (tomorrow)")
    assert english[2] == ("2026-11-30", "30 Nov, {time} IST", "Mon, 30 Nov")
    assert english[-1] == ("2026-12-28", "28 Dec, {time} IST", "Mon, 28 Dec")
    hindi = day_options(rule().days("hi", lambda text: said.get(text, text)))
    assert hindi[0] == ("2026-11-28", "28 नव॰, {time} IST", "शनि, 28 नव॰ (आज)")
    assert hindi[1][2] == "रवि, 29 नव॰ (कल)"
    # Late in the evening in UTC is already tomorrow in India: the zone's day counts.
    late = rule(now=datetime(2026, 11, 28, 20, 0, tzinfo=ZoneInfo("UTC")))
    assert day_options(late.days("en", str))[0][0] == "2026-11-29"


@pytest.mark.parametrize("language", ["en", "hi", "ta"])
@pytest.mark.parametrize("clock", ["00:12", "09:05", "10:30", "23:59"])
def test_a_day_with_its_time_reads_exactly_as_the_outcome_writes_it(language, clock):
    """What the panel writes beside the control (the day's data-when, the time in it) is
    spoken(): the agent reads the same words before and after saving."""
    for value, when, _shown in day_options(rule().days(language, str))[1::7]:  # tomorrow on
        at = rule().read(f"{value}T{clock}")
        assert when.replace("{time}", clock) == rule().spoken(at, language)


def test_the_day_list_is_worked_out_once_a_day_per_language():
    now = [NOW]
    clocked = CallbackRule((), "Asia/Kolkata", clock=lambda tz: now[0].astimezone(tz))
    asked = []

    def translate(text):
        asked.append(text)
        return text

    first = clocked.days("en", translate)
    now[0] = NOW + timedelta(hours=4)  # 23:30: the same day
    assert clocked.days("en", translate) is first and len(asked) == 2
    assert clocked.days("hi", translate) is not first  # each language its own
    now[0] = NOW + timedelta(hours=5)  # 00:30: the next day
    later = clocked.days("en", translate)
    assert (
        day_options(later)[0][0] == "2026-11-29" and day_options(later)[0] != day_options(first)[0]
    )


def test_on_the_real_clock_the_day_list_is_kept_until_midnight_in_the_zone(monkeypatch):
    """A panel then reads time.time() only; the zone's date is worked out again once its
    day is over (here the clock is moved, as it would run, to one second before and after
    midnight in India)."""
    import webapp.panel.callbacks as callbacks

    real = CallbackRule((), "Asia/Kolkata")
    first = real.days("en", str)
    today = datetime.now(real.zone).date()
    midnight = datetime.combine(today + timedelta(days=1), datetime.min.time(), real.zone)
    asked = []
    monkeypatch.setattr(real, "now", lambda: asked.append(1) or datetime.now(real.zone))
    monkeypatch.setattr(callbacks.time, "time", lambda: midnight.timestamp() - 1)
    assert real.days("en", str) is first and asked == []  # no zone's date asked for
    monkeypatch.setattr(callbacks.time, "time", lambda: midnight.timestamp() + 1)
    monkeypatch.setattr(real, "now", lambda: midnight + timedelta(seconds=1))
    later = real.days("en", str)
    assert day_options(later)[0][0] == (today + timedelta(days=1)).isoformat()


# -- the panel -------------------------------------------------------------------------------


def in_ist(**delta):
    """A datetime-local value that far from now, in CloudAgent's zone (IST)."""
    return (datetime.now(IST) + timedelta(**delta)).strftime("%Y-%m-%dT%H:%M")


@pytest.fixture
def panel(panels, call):
    return panels.open(call.ucid)


def test_the_panel_offers_the_callback_field_for_callback_dispositions(panel):
    field = re.search(r'<div class="field" id="callback-field" hidden ([^>]*)>', panel.html)
    assert field, "no callback field"
    assert 'data-dispositions="[&#34;Call back later&#34;]"' in field.group(1)
    assert 'data-zone="Asia/Kolkata"' in field.group(1)
    # One group named as before, a day list and a 24-hour time box; callback_time is posted.
    assert 'id="callback_time-label">Callback time (IST)</span>' in panel.html
    assert '<div class="callback" role="group" aria-labelledby="callback_time-label">' in panel.html
    assert '<input type="hidden" id="callback_time" name="callback_time">' in panel.html
    assert '<label for="callback_day">Day</label>' in panel.html
    assert '<label for="callback_clock">Time (24-hour)</label>' in panel.html
    clock = re.search(r'<input type="text" id="callback_clock"([^>]*)>', panel.html).group(1)
    assert 'inputmode="numeric"' in clock and 'placeholder="HH:MM"' in clock
    assert 'aria-describedby="callback_time-when callback_time-hint callback_time-error"' in clock
    days = re.search(r'<select id="callback_day"[^>]*>(.*?)</select>', panel.html).group(1)
    today = datetime.now(IST).date()
    (first, when, shown) = day_options(days)[0]
    assert first == today.isoformat() and shown.endswith(" (today)")
    assert when == f"{today.day} {today:%b}, {{time}} IST"
    assert day_options(days)[-1][0] == (today + timedelta(days=30)).isoformat()
    assert "datetime-local" not in panel.html
    for quick in ("In 1 hour", "Tomorrow 10:00"):
        assert f">{quick}</button>" in panel.html


def test_a_callback_is_sent_in_cloudagents_form_and_told_to_everyone(app, panel, call, simulator):
    when = in_ist(days=1)
    response = panel.save(disposition="Call back later", callback_time=when)
    html = response.get_data(as_text=True)
    expected = when.replace("T", " ")
    assert outcome_of(response) == "queued"
    (attempt,) = simulator.get_call(call.ucid).attempts
    assert attempt.sent["callBackTime"] == expected
    assert attempt.request.callback_time == expected
    at = datetime.strptime(expected, "%Y-%m-%d %H:%M")
    assert f"Callback at {at.day} {at:%b}, {at:%H:%M} IST." in html
    assert f'data-callback-time="{expected}"' in html  # what the host page's event carries
    (row,) = app.extensions["audit"].rows()
    assert row["callback_time"] == expected
    exported = app.test_cli_runner().invoke(args=["audit", "export", "--format", "csv"])
    (line,) = csv.DictReader(io.StringIO(exported.stdout))
    assert line["callback_time"] == expected


@pytest.mark.parametrize(
    "value, message",
    [
        ("", "Choose a callback time for this disposition."),
        (None, "Choose a callback time for this disposition."),
        ("next week", "Enter the callback time as a date and a time."),
        ("PAST", "That callback time has passed."),
        ("FAR", "A callback can be at most 30 days ahead."),
    ],
)
def test_a_missing_or_wrong_callback_time_is_refused_beside_the_field(
    app, panel, call, simulator, value, message
):
    value = {"PAST": in_ist(minutes=-5), "FAR": in_ist(days=31)}.get(value, value)
    response = panel.save(disposition="Call back later", callback_time=value, comments="kept")
    html = response.get_data(as_text=True)
    assert response.status_code == 422 and outcome_of(response) == "invalid"
    slot = re.search(r'<p id="callback_time-error"[^>]*hx-swap-oob="true">([^<]*)</p>', html)
    assert message in slot.group(1)
    assert simulator.get_call(call.ucid).attempts == []
    assert list(app.extensions["audit"].rows()) == []


def test_other_dispositions_never_send_a_callback_time(app, panel, call, simulator):
    response = panel.save(disposition="Interested", callback_time=in_ist(days=1))
    assert outcome_of(response) == "queued"
    (attempt,) = simulator.get_call(call.ucid).attempts
    assert attempt.sent["callBackTime"] is None
    assert "Callback at" not in response.get_data(as_text=True)
    assert 'data-callback-time=""' in response.get_data(as_text=True)
    (row,) = app.extensions["audit"].rows()
    assert row["callback_time"] is None


def test_the_configured_names_and_zone_are_the_ones_used(make_app, panels, simulator):
    app = make_app(
        WIDGET_CALLBACK_DISPOSITIONS="Interested", WIDGET_CLOUDAGENT_TIMEZONE="Europe/Berlin"
    )
    call = simulator.start_call("agent1", "914071327663")
    panel = panels.on(app.test_client()).open(call.ucid)
    assert "Callback time (CET)" in panel.html or "Callback time (CEST)" in panel.html
    assert 'data-dispositions="[&#34;Interested&#34;]"' in panel.html
    later = (datetime.now(ZoneInfo("Europe/Berlin")) + timedelta(hours=2)).strftime(
        "%Y-%m-%dT%H:%M"
    )
    assert outcome_of(panel.save(disposition="Call back later")) == "queued"  # not a callback
    refused = panel.save(disposition="Interested")
    assert outcome_of(refused) == "invalid"
    assert outcome_of(panel.save(disposition="Interested", callback_time=later)) == "queued"
    assert simulator.get_call(call.ucid).attempts[-1].sent["callBackTime"] == later.replace(
        "T", " "
    )


def test_a_list_without_callback_dispositions_has_no_callback_field(make_app, panels, simulator):
    app = make_app(WIDGET_CALLBACK_DISPOSITIONS="Not on the list")
    call = simulator.start_call("agent1", "914071327663")
    panel = panels.on(app.test_client()).open(call.ucid)
    assert 'id="callback-field"' not in panel.html
    assert outcome_of(panel.save(disposition="Call back later")) == "queued"


# -- daylight saving: the zone's clocks, not wall times, decide (issue 19) -------------------

BERLIN, NEW_YORK = "Europe/Berlin", "America/New_York"
UTC = ZoneInfo("UTC")


def at_utc(*parts):
    return datetime(*parts, tzinfo=UTC)


@pytest.mark.parametrize(
    "zone, value",
    [
        (BERLIN, "2026-03-29T02:30"),  # 02:00 CET becomes 03:00 CEST
        (BERLIN, "2026-03-29T02:00"),
        (NEW_YORK, "2026-03-08T02:15"),  # 02:00 EST becomes 03:00 EDT
    ],
)
def test_a_wall_time_the_clocks_skip_is_refused(zone, value):
    with pytest.raises(CallbackTimeError, match="does not exist"):
        rule(zone=zone, now=at_utc(2026, 3, 1, 12, 0)).read(value)


def test_the_times_around_the_spring_gap_are_taken():
    berlin = rule(zone=BERLIN, now=at_utc(2026, 3, 1, 12, 0))
    assert berlin.upstream(berlin.read("2026-03-29T01:59")) == "2026-03-29 01:59"
    assert berlin.upstream(berlin.read("2026-03-29T03:00")) == "2026-03-29 03:00"


def test_in_the_repeated_hour_a_time_already_gone_is_refused():
    # 01:10 UTC is 02:10 CET, the second 02:10 of the night the clocks go back (fold=1);
    # 02:30 was first (and, for CloudAgent, only) 02:30 CEST = 00:30 UTC: 40 minutes ago.
    second_pass = rule(zone=BERLIN, now=at_utc(2026, 10, 25, 1, 10))
    assert second_pass.now().fold == 1
    with pytest.raises(CallbackTimeError, match="has passed"):
        second_pass.read("2026-10-25T02:30")
    assert second_pass.upstream(second_pass.read("2026-10-25T03:05")) == "2026-10-25 03:05"


def test_in_the_repeated_hour_a_time_to_come_is_taken():
    first_pass = rule(zone=BERLIN, now=at_utc(2026, 10, 25, 0, 10))  # 02:10 CEST
    assert first_pass.upstream(first_pass.read("2026-10-25T02:30")) == "2026-10-25 02:30"
    new_york = rule(zone=NEW_YORK, now=at_utc(2026, 11, 1, 6, 10))  # 01:10 EST, second pass
    with pytest.raises(CallbackTimeError, match="has passed"):
        new_york.read("2026-11-01T01:40")  # 01:40 EDT was 05:40 UTC


def test_thirty_days_ahead_are_counted_in_hours_across_a_clock_change():
    # 12:00 CET on 1 March; 30 days on, the clocks have gone forward: 13:00 CEST.
    berlin = rule(zone=BERLIN, now=at_utc(2026, 3, 1, 11, 0))
    assert berlin.upstream(berlin.read("2026-03-31T12:30")) == "2026-03-31 12:30"
    with pytest.raises(CallbackTimeError, match="30 days"):
        berlin.read("2026-03-31T13:01")


def test_a_skipped_time_is_refused_beside_the_field_in_the_agents_language(
    make_app, panels, simulator
):
    app = make_app(WIDGET_CLOUDAGENT_TIMEZONE=BERLIN)
    winter = at_utc(2026, 3, 20, 9, 0)  # the clocks go forward on the 29th
    app.extensions["callbacks"] = rule(["Interested"], BERLIN, now=winter)
    call = simulator.start_call("agent1", DID)
    for lang, text in (("en", "does not exist"), ("hi", "होता ही नहीं")):
        panel = panels.on(app.test_client()).open(call.ucid, lang=lang)
        response = panel.save(disposition="Interested", callback_time="2026-03-29T02:30")
        assert response.status_code == 422 and outcome_of(response) == "invalid"
        assert text in response.get_data(as_text=True)
    assert simulator.stats()["requests"]["Set"] == 0
