"""Property-based tests: whatever a CRM or a browser sends, the panel stays sane.

Launch links, saved forms and context/CSRF tokens go through the real app (Flask's test client)
with CloudAgent as the simulator on loopback. (Reading CloudAgent's bodies:
tests/cloudagent/test_outcome_properties.py.)
"""

from __future__ import annotations

import html
import re
import time
import unicodedata
from datetime import datetime, timedelta
from unittest import mock
from urllib.parse import quote, urlencode
from zoneinfo import ZoneInfo

import pytest
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st
from werkzeug.datastructures import MultiDict

from tests.helpers import DID, LAUNCH_SECRET, outcome_of
from webapp.cloudagent import (
    ALREADY_DISPOSED,
    QUEUED,
    REJECTED,
    SAVED,
    UNAVAILABLE,
)
from webapp.config import DEFAULT_PAUSE_REASONS
from webapp.panel import COMMENTS_MAX
from webapp.panel import launch as launch_module
from webapp.panel.launch import sign
from webapp.simulator import Simulator

UPSTREAM_KINDS = {QUEUED, SAVED, ALREADY_DISPOSED, REJECTED, UNAVAILABLE}
IST = ZoneInfo("Asia/Kolkata")  # the default WIDGET_CLOUDAGENT_TIMEZONE
DISPOSITIONS = tuple(Simulator().account("demo").dispositions)
PAUSE_REASONS = DEFAULT_PAUSE_REASONS
LAUNCH_MAX_AGE = 600  # the default WIDGET_LAUNCH_MAX_AGE, which the test app uses
REQUIRED = ("ucid", "agentID", "did")
RESERVED = {*REQUIRED, "ts", "sig"}

# Tests that use pytest fixtures: the fixtures live for the whole test, not one example.
WITH_FIXTURES = dict(
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


@pytest.fixture
def app(make_app):
    """The test app, with the per-agent save limit out of the way: these tests save a lot."""
    return make_app(WIDGET_SAVES_PER_MINUTE="10000")


# -- shared strategies -----------------------------------------------------------------------

# Characters that are easy to get wrong: controls, line and paragraph separators, BOM, bidi
# overrides, zero-width, combining, RTL script, astral, specials and noncharacters.
AWKWARD = (
    "\x00\x01\x08\t\n\x0b\x0c\r\x1b\x1f\x7f\x80\x85\x9f\xa0\xad"
    "\u0301\u0591\u05d0\u0627\u200b\u200d\u200e\u200f\u202a\u202e\u2028\u2029\u2066\u2069"
    "\ufeff\ufdd0\ufff9\ufffc\ufffd\ufffe\uffff"
    "\U0001d518\U0001f600\U000e0001\U0010ffff"
)
# Any character that UTF-8 can carry (a browser cannot send a lone surrogate), and the awkward.
chars = st.characters(codec="utf-8") | st.sampled_from(AWKWARD)
awkward_text = st.text(alphabet=chars, max_size=40)
# Long values: a short chunk repeated, so hypothesis need not draw thousands of characters.
long_text = st.builds(
    lambda chunk, n: (chunk * n)[:n],
    st.text(alphabet=chars, min_size=1, max_size=4),
    st.integers(200, 3000),
)
any_value = awkward_text | long_text


def refused_page_checks(response, given_strings, baseline):
    """A refused link: a small 403 that repeats nothing of what it was given, and no cookie."""
    page = response.get_data(as_text=True)
    assert response.status_code == 403, response.status_code
    assert "This link is not valid" in page
    assert "Traceback" not in page
    assert "Set-Cookie" not in response.headers
    for value in given_strings:
        if len(value) < 4 or value in baseline or html.escape(value) in baseline:
            continue  # too short to tell, or words the fixed page holds anyway
        assert value not in page, value
        assert html.escape(value) not in page, value


# -- 1. launch links -------------------------------------------------------------------------

any_names = st.sampled_from(
    ["ucid", "agentID", "did", "ts", "sig", "callerID", "UCID", "agentid", " ucid", "ucid[]"]
) | st.text(max_size=20)
hex64 = st.text(alphabet="0123456789abcdef", min_size=64, max_size=64)
sig_values = (
    hex64
    | hex64.map(str.upper)
    | st.text(alphabet="0123456789abcdefABCDEF", max_size=80)
    | awkward_text
)
ts_values = (
    st.integers().map(str)
    | st.integers(min_value=10**12).map(str)
    | st.integers(max_value=-1).map(str)
    | st.floats().map(repr)
    | st.floats().map(str)
    | awkward_text
    | st.just(str(int(time.time())))
)
# "REAL:ucid" etc. stand for the live call's own values, filled in by the test.
unsigned_values = any_value | st.sampled_from([f"REAL:{n}" for n in REQUIRED])
unsigned_pairs = st.lists(
    st.tuples(st.just("ts"), ts_values)
    | st.tuples(st.just("sig"), sig_values)
    | st.tuples(any_names, unsigned_values),
    max_size=8,
)
JUNK = ["%", "%zz", "%ff", "%00", "%C3", "%E2%80%AE", "%0A", "%0d%0a", "&", "&&", "=", "==", ";"]
JUNK += ["+", "%2B", "a=b=c", "ucid", "sig=", "ts=%20"]


def encode_query(pairs, how):
    if how == "plus":
        return urlencode(pairs)
    if how == "percent":
        return urlencode(pairs, quote_via=quote, safe="")
    # "raw": the text itself, as a client that does not percent-encode would send its bytes.
    return "&".join(f"{k}={v}" for k, v in pairs).encode("utf-8").decode("latin-1")


@pytest.fixture
def refusal_baseline(web):
    return web.get("/disposition").get_data(as_text=True)


@settings(max_examples=200, **WITH_FIXTURES)
@given(
    pairs=unsigned_pairs,
    how=st.sampled_from(["plus", "percent", "raw"]),
    junk=st.lists(st.sampled_from(JUNK), max_size=4),
)
@example(pairs=[(n, f"REAL:{n}") for n in REQUIRED], how="plus", junk=[])
@example(
    pairs=[(n, f"REAL:{n}") for n in REQUIRED] + [("ts", str(int(time.time()))), ("sig", "0" * 64)],
    how="percent",
    junk=[],
)
def test_an_unsigned_link_is_refused_whatever_it_holds(
    web, simulator, refusal_baseline, pairs, how, junk
):
    call = simulator.start_call("agent1", DID)
    real = {"REAL:ucid": call.ucid, "REAL:agentID": "agent1", "REAL:did": DID}
    pairs = [(k, real.get(v, v)) for k, v in pairs]
    query = "&".join(filter(None, [encode_query(pairs, how), *junk]))
    before = simulator.stats()["requests"]

    response = web.get("/disposition", environ_overrides={"QUERY_STRING": query})

    assert response.status_code < 500
    given_strings = [s for pair in pairs for s in pair] + junk
    refused_page_checks(response, given_strings, refusal_baseline)
    assert simulator.stats()["requests"] == before


identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,70}", fullmatch=True)
param_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,70}", fullmatch=True) | st.text(max_size=12)
good_identifiers = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}", fullmatch=True)
good_names = st.from_regex(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", fullmatch=True).filter(
    lambda n: n not in RESERVED
)
# For ucid/agentID/did: the live call's own value, any identifier-shaped text, anything, or absent.
required_values = (
    st.just("REAL")
    | identifiers
    | any_value
    | st.sampled_from(["", " ", "agent1 ", "a b", "<b>x</b>", "x\ny"])
    | st.none()
)
extra_values = (
    any_value
    | st.sampled_from(["+919800000000", "Zoë Fernandes & Co.", "", "a\nb", "x" * 512, "x" * 513])
    | st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n\r"), max_size=30)
)
ts_specs = (
    st.tuples(st.just("offset"), st.integers(-LAUNCH_MAX_AGE + 10, 50))  # in the window
    | st.tuples(
        st.just("offset"), st.integers(-(10**7), -LAUNCH_MAX_AGE - 10) | st.integers(70, 10**7)
    )
    | st.tuples(st.just("literal"), ts_values)
    | st.just(("absent", ""))
)
MUTATIONS = ["upper", "truncate", "extend", "flip", "drop", "double", "tamper", "unsign"]


def identifier_ok(value):
    return value is not None and re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,63}", value)


def launch_is_valid(params, now):
    """The rules of docs/embedding.md, "Rules a link must follow", for an intact signature."""
    if len(params) > 32:
        return False
    for name, value in params.items():
        if not re.fullmatch(r"[A-Za-z][A-Za-z0-9_.-]{0,63}", name):
            return False
        if len(value) > 512 or "\n" in value or "\r" in value:
            return False
    ts = params.get("ts", "")
    if not re.fullmatch(r"-?[0-9]+", ts) or not now - LAUNCH_MAX_AGE <= int(ts) <= now + 60:
        return False
    return all(identifier_ok(params.get(name)) for name in REQUIRED)


class FrozenTime:
    """Stands in for the `time` module in webapp.panel.launch: a clock that does not move."""

    def __init__(self, now):
        self.now = now

    def time(self):
        return float(self.now)


# Half the cases are links a CRM would build (then perhaps altered), half anything at all.
crm_links = st.fixed_dictionaries(
    {
        "required": st.fixed_dictionaries(
            {name: st.just("REAL") | good_identifiers for name in REQUIRED}
        ),
        "extra": st.dictionaries(good_names, extra_values, max_size=4),
        "many": st.sampled_from([0, 0, 0, 0, 26, 27, 28]),
        "ts_spec": st.tuples(st.just("offset"), st.integers(-LAUNCH_MAX_AGE + 10, 50)),
        "mutation": st.sampled_from([None] * 8 + MUTATIONS),
    }
)
any_links = st.fixed_dictionaries(
    {
        "required": st.fixed_dictionaries({name: required_values for name in REQUIRED}),
        "extra": st.dictionaries(
            param_names.filter(lambda n: n not in RESERVED), extra_values, max_size=4
        ),
        "many": st.sampled_from([0, 0, 0, 0, 26, 27, 28]),
        "ts_spec": ts_specs,
        "mutation": st.sampled_from([None] * 4 + MUTATIONS),
    }
)


@settings(max_examples=300, **WITH_FIXTURES)
@given(link=crm_links | any_links, how=st.sampled_from(["plus", "percent"]), data=st.data())
def test_a_signed_link_opens_only_when_every_rule_holds(
    web, simulator, refusal_baseline, link, how, data
):
    required, extra, many = link["required"], link["extra"], link["many"]
    ts_spec, mutation = link["ts_spec"], link["mutation"]
    call = simulator.start_call("agent1", DID)
    real = {"ucid": call.ucid, "agentID": "agent1", "did": DID}
    params = {n: real[n] if v == "REAL" else v for n, v in required.items() if v is not None}
    params |= extra
    params |= {f"x{i}": str(i) for i in range(many)}  # with ts and sig: 28 to 30+ parameters
    now = int(time.time())
    kind, ts = ts_spec
    if kind == "offset":
        params["ts"] = str(now + ts)
    elif kind == "literal":
        params["ts"] = ts
    params["sig"] = sign(params, LAUNCH_SECRET)
    valid = mutation is None and launch_is_valid(params, now)

    pairs = data.draw(st.permutations(list(params.items())), label="order")
    if mutation == "upper":
        pairs = [(k, v.upper() if k == "sig" else v) for k, v in pairs]
    elif mutation == "truncate":
        pairs = [(k, v[:-1] if k == "sig" else v) for k, v in pairs]
    elif mutation == "extend":
        pairs = [(k, v + "0" if k == "sig" else v) for k, v in pairs]
    elif mutation == "flip":
        flip = {"0": "1"}
        pairs = [(k, v[:-1] + flip.get(v[-1], "0") if k == "sig" else v) for k, v in pairs]
    elif mutation == "drop":
        pairs = [(k, v) for k, v in pairs if k != "sig"]
    elif mutation == "double":
        pairs = pairs + [data.draw(st.sampled_from(pairs), label="doubled")]
    elif mutation == "tamper":
        pairs = [(k, v + "1" if k == "ucid" else v) for k, v in pairs] + [("extra", "1")]
    elif mutation == "unsign":
        pairs = [(k, "0" * 64 if k == "sig" else v) for k, v in pairs]
    before = simulator.stats()["requests"]

    # The app reads the same `now` as the link was made with: however long this example took
    # to get here, a link 10 s inside the window is inside it.
    with mock.patch.object(launch_module, "time", FrozenTime(now)):
        response = web.get("/disposition?" + encode_query(pairs, how))

    event("opened" if valid else "refused")
    assert response.status_code < 500
    assert "Set-Cookie" not in response.headers
    if valid:
        page = response.get_data(as_text=True)
        assert response.status_code == 200
        assert f"<dd>{html.escape(params['ucid'])}</dd>" in page
        assert f"<dd>{html.escape(params['agentID'])}</dd>" in page
        # Opening may fetch the disposition list, never set anything.
        assert simulator.stats()["requests"]["Set"] == before["Set"]
    else:
        given_strings = [s for pair in pairs for s in pair if pair[0] != "ts"]
        refused_page_checks(response, given_strings, refusal_baseline)
        assert simulator.stats()["requests"] == before


@settings(max_examples=60, **WITH_FIXTURES)
@given(
    shape=st.sampled_from(["space", "tab", "trailing", "plus", "underscore", "arabic", "fullwidth"])
)
def test_a_signed_ts_must_be_plain_digits(web, simulator, shape):
    call = simulator.start_call("agent1", DID)
    now = str(int(time.time()))
    ts = {
        "space": f" {now}",
        "tab": f"\t{now}",
        "trailing": f"{now} ",
        "plus": f"+{now}",
        "underscore": f"{now[:4]}_{now[4:]}",
        "arabic": now.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")),
        "fullwidth": now.translate(str.maketrans("0123456789", "０１２３４５６７８９")),
    }[shape]
    params = {"ucid": call.ucid, "agentID": "agent1", "did": DID, "ts": ts}
    params["sig"] = sign(params, LAUNCH_SECRET)
    response = web.get("/disposition?" + urlencode(params))
    assert response.status_code == 403


# -- 2. the saved form -----------------------------------------------------------------------

FORM_MESSAGES = {
    "Choose a disposition.",
    "That disposition name is too long.",
    "Choose a disposition from the list.",
    f"Comments can be at most {COMMENTS_MAX} characters.",
    "Comments contain a control character that cannot be saved; remove it.",
    "Choose a pause reason, or untick Pause after this call.",
    "Choose a pause reason from the list.",
    "Choose a callback time for this disposition.",
    "Enter the callback time as a date and a time.",
    "That callback time has passed. Choose a time in the future.",
    "A callback can be at most 30 days ahead.",
}


def near_misses(name):
    return [
        name.lower(),
        name.upper(),
        name + " ",
        " " + name,
        name[:-1],
        name + "\x00",
        name + "\u200b",
        "\ufeff" + name,
        name.replace("e", "é"),
        unicodedata.normalize("NFD", name.replace("e", "é")),
        name.replace("i", "\u0456"),  # Cyrillic i
        "".join(chr(ord(c) + 0xFEE0) if "!" <= c <= "~" else c for c in name),  # full width
    ]


def weighted(*choices):
    """One of the strategies, picked with the given weights (st.one_of picks evenly)."""
    pool = [strategy for weight, strategy in choices for _ in range(weight)]
    return st.integers(0, len(pool) - 1).flatmap(lambda i: pool[i])


dispositions = weighted(
    (5, st.sampled_from(DISPOSITIONS)),
    (2, st.sampled_from(DISPOSITIONS).flatmap(lambda n: st.sampled_from(near_misses(n)))),
    (1, awkward_text),
    (
        1,
        st.builds(lambda n, k: (n * 300)[:k], st.sampled_from(DISPOSITIONS), st.integers(240, 400)),
    ),
    (1, st.just("")),
)
plain_chars = st.characters(codec="utf-8", categories=["L", "M", "N", "P", "S", "Zs"])
comments = weighted(
    (2, st.text(alphabet=plain_chars | st.sampled_from("\t\n\r"), max_size=60)),
    (1, st.text(alphabet=plain_chars, max_size=20)),
    (2, st.text(alphabet=chars, max_size=60)),
    (
        1,
        st.builds(
            lambda chunk, n: (chunk * n)[:n],
            st.text(alphabet=chars, min_size=1, max_size=3),
            st.integers(480, 1000),
        ),
    ),
    (1, st.just("é" * 500)),
)
pauses = weighted(
    (4, st.sampled_from(["y", "on", "true", ""])),
    (2, st.sampled_from(["false", "0", "no", "off", "TRUE", "junk", " "])),
    (1, awkward_text),
)
pause_reasons = weighted(
    (5, st.sampled_from(PAUSE_REASONS)),
    (2, st.sampled_from(PAUSE_REASONS).flatmap(lambda n: st.sampled_from(near_misses(n)))),
    (1, awkward_text),
    (1, st.just("")),
)


def ist_local(minutes):
    """A datetime-local value `minutes` from now in CloudAgent's zone (IST)."""
    return (datetime.now(IST) + timedelta(minutes=minutes)).strftime("%Y-%m-%dT%H:%M")


callback_times = weighted(
    (4, st.integers(5, 30 * 24 * 60 - 5).map(ist_local)),  # to come, within 30 days
    (1, st.integers(-400 * 24 * 60, -5).map(ist_local)),  # past
    (1, st.integers(30 * 24 * 60 + 5, 400 * 24 * 60).map(ist_local)),  # too far ahead
    (1, st.integers(5, 24 * 60).map(lambda m: ist_local(m).replace("T", " "))),
    (1, st.integers(5, 24 * 60).map(lambda m: ist_local(m) + ":00")),
    (1, st.integers(5, 24 * 60).map(lambda m: " " + ist_local(m) + "\t")),
    (1, st.sampled_from(["2026-02-30T10:00", "２０２６-11-29T10:30", "2026-11-29T10:30Z", ""])),
    (1, awkward_text),
)
CALLBACK_SHAPE = re.compile(
    r"([0-9]{4})-([0-9]{2})-([0-9]{2})[T ]([0-9]{2}):([0-9]{2})(?::[0-9]{2}(?:\.[0-9]{1,3})?)?"
)


def callback_time(value):
    """The time a callback value names (in IST), or None if it names none."""
    match = CALLBACK_SHAPE.fullmatch((value or "").strip())
    try:
        return datetime(*(int(g) for g in match.groups()), tzinfo=IST) if match else None
    except ValueError:
        return None


def callback_valid(value):
    """Whether the callback time is accepted; None within two minutes of a limit (the model
    and the server read the clock at different moments)."""
    at = callback_time(value)
    if at is None:
        return False
    now, margin = datetime.now(IST), timedelta(minutes=2)
    if at <= now - margin or at > now + timedelta(days=30) + margin:
        return False
    if now + margin < at <= now + timedelta(days=30) - margin:
        return True
    return None


def needs_callback(disposition):
    return disposition in DISPOSITIONS and re.search(r"call\s*back", disposition, re.I) is not None


def field_values(values):
    """A field absent (sometimes), given once (most often), or given twice (sometimes)."""
    return st.sampled_from([0, 1, 1, 1, 1, 1, 2]).flatmap(
        lambda n: st.lists(values, min_size=n, max_size=n)
    )


# Unicode categories that are plainly printable text; \t \n \r are allowed line breaks/tabs.
PRINTABLE_CATEGORIES = ("L", "M", "N", "P", "S", "Zs")
SPECIALS = range(0xFFF0, 0x10000)


def control_free(text):
    """None: no answer from this model (format, private-use and unassigned characters)."""
    verdict = True
    for char in text:
        if char in "\t\n\r":
            continue
        if unicodedata.category(char) == "Cc" or char in "\u2028\u2029\ufeff":
            return False
        if ord(char) in SPECIALS or not unicodedata.category(char).startswith(PRINTABLE_CATEGORIES):
            verdict = None
    return verdict


def pausing(value):
    """None when the model has no answer (values a checkbox never sends)."""
    if value is None or value == "":
        return False
    return True if value in ("y", "on", "true") else None


def predict_valid(disposition, comment, pause, reason, callback=None):
    """Whether the form is valid, by the panel's rules; None when the model cannot tell."""
    checks = [disposition in DISPOSITIONS]
    if needs_callback(disposition):
        checks.append(callback_valid(callback))
    checks.append(len(comment) <= 500 and control_free(comment))
    wants_pause = pausing(pause)
    checks.append(None if wants_pause is None else (not wants_pause or reason in PAUSE_REASONS))
    if False in checks:
        return False
    return None if None in checks else True


def message_of(response):
    page = response.get_data(as_text=True)
    match = re.search(r'data-outcome="[a-z_]+"[^>]*><strong>[^<]*</strong>([^<]*)</p>', page)
    return html.unescape(match.group(1)).strip() if match else ""


MAX_BODY = 16 * 1024  # the app's MAX_CONTENT_LENGTH


def oversized(pairs):
    """Whether a form body is over the cap (quote_plus encodes at least what the client does)."""
    return len(urlencode(pairs)) > MAX_BODY


EXPECTED_BY_STATE = {"live": QUEUED, "wrapup": SAVED, "closed": ALREADY_DISPOSED}


@settings(max_examples=250, **WITH_FIXTURES)
@given(
    fields=st.fixed_dictionaries(
        {
            "disposition": field_values(dispositions),
            "comments": field_values(comments),
            "pause": field_values(pauses),
            "pause_reason": field_values(pause_reasons),
            "callback_time": field_values(callback_times),
        }
    ),
    junk=st.lists(
        st.tuples(st.sampled_from(["save", "ucid", "agentID", "x"]), awkward_text), max_size=4
    ),
    state=st.sampled_from(["live", "live", "wrapup", "closed"]),
    data=st.data(),
)
def test_whatever_the_form_holds_only_valid_values_reach_cloudagent(
    web, simulator, fields, junk, state, data, panels
):
    call = simulator.start_call("agent1", DID)
    panel = panels.open(call.ucid)
    if state == "wrapup":
        simulator.hang_up(call.ucid)
    elif state == "closed":
        simulator.expire_wrapup(call.ucid)
    pairs = [("context", panel.field("context")), ("csrf_token", panel.field("csrf_token"))]
    pairs += [(name, value) for name, values in fields.items() for value in values] + junk
    pairs = data.draw(st.permutations(pairs), label="order")
    attempts_before = len(simulator.get_call(call.ucid).attempts)
    sets_before = simulator.stats()["requests"]["Set"]

    response = web.post("/disposition/save", data=MultiDict(pairs), headers={"HX-Request": "true"})

    assert response.status_code < 500
    assert "Set-Cookie" not in response.headers
    kind = outcome_of(response)
    event(f"{response.status_code} {kind}")
    attempts = simulator.get_call(call.ucid).attempts[attempts_before:]
    sent_sets = simulator.stats()["requests"]["Set"] - sets_before
    if response.status_code == 413:
        # Only a body over the app's 16 KiB cap (the form itself stays under 10 KiB).
        assert oversized(pairs)
        assert kind == "invalid"
        assert attempts == [] and sent_sets == 0
        return
    if response.status_code == 422:
        assert kind == "invalid"
        message = message_of(response)
        assert message
        # The message is made of the panel's own, clear sentences, and nothing else.
        rest = message
        for known in sorted(FORM_MESSAGES, key=len, reverse=True):
            rest = rest.replace(known, "")
        assert not rest.strip(), message
        assert attempts == [] and sent_sets == 0
    else:
        assert response.status_code == 200, response.status_code
        assert kind in UPSTREAM_KINDS
        assert len(attempts) == sent_sets == 1
        sent = attempts[0].sent
        assert sent["disposition"] in DISPOSITIONS
        assert sent["disposition"] in fields["disposition"]
        assert sent["comments"] in (fields["comments"] or [""])
        assert len(sent["comments"]) <= 500
        assert control_free(sent["comments"]) is not False, ascii(sent["comments"])
        assert sent["pauseAfterDispose"] in ("true", "false")
        if sent["pauseAfterDispose"] == "true":
            assert sent["pauseReason"] in PAUSE_REASONS
            assert sent["pauseReason"] in fields["pause_reason"]
            assert attempts[0].request.pause_after_dispose is True
        else:
            assert sent["pauseReason"] in (None, "")
            assert attempts[0].request.pause_after_dispose is False
        if needs_callback(sent["disposition"]):
            # One of the values given, in CloudAgent's form: YYYY-MM-DD HH:MM, in IST.
            given = {callback_time(v) for v in fields["callback_time"]} - {None}
            at = datetime.strptime(sent["callBackTime"], "%Y-%m-%d %H:%M").replace(tzinfo=IST)
            assert at in given
            assert datetime.now(IST) - timedelta(minutes=2) < at
            assert at <= datetime.now(IST) + timedelta(days=30)
        else:
            assert sent["callBackTime"] is None

    # Where each field was given once (or not at all), the outcome is fully determined.
    if all(len(values) <= 1 for values in fields.values()):
        first = {name: (values or [None])[0] for name, values in fields.items()}
        valid = predict_valid(
            first["disposition"],
            first["comments"] or "",
            first["pause"],
            first["pause_reason"],
            first["callback_time"],
        )
        event(f"predicted valid: {valid}")
        if valid is True:
            assert (response.status_code, kind) == (200, EXPECTED_BY_STATE[state])
            assert attempts[0].sent["comments"] == (first["comments"] or "")
        elif valid is False:
            assert response.status_code == 422


# -- 3. context and CSRF tokens --------------------------------------------------------------

TOKEN_KINDS = ["absent", "empty", "text", "mine", "other", "truncate", "append", "change", "swap"]
TOKEN_KINDS += ["upper", "spaced"]
# How a token is made: its kind, text for "text", and a position and a character for the edits.
tokens = st.tuples(
    st.sampled_from(TOKEN_KINDS),
    any_value | st.text(alphabet="0123456789abcdef.-_ABC"),
    st.integers(0, 10**6),
    chars | st.sampled_from("AaZz09-_.="),
)


def token_from(spec, mine, other, swap):
    kind, text, position, char = spec
    at = position % len(mine)
    return {
        "absent": None,
        "empty": "",
        "text": text,
        "mine": mine,
        "other": other,
        "swap": swap,
        "upper": mine.upper(),
        "spaced": f" {mine} ",
        "truncate": mine[:at],
        "append": mine + char,
        "change": mine[:at] + char + mine[at + 1 :],
    }[kind]


@settings(max_examples=150, **WITH_FIXTURES)
@given(context_spec=tokens, csrf_spec=tokens)
@example(context_spec=("mine", "", 0, "A"), csrf_spec=("text", "\x80", 0, "A"))
def test_a_save_without_its_own_context_and_csrf_pair_is_refused(
    web, simulator, context_spec, csrf_spec, panels
):
    call = simulator.start_call("agent1", DID)
    mine = panels.open(call.ucid)
    theirs = panels.open(simulator.start_call("agent2", DID).ucid, agent="agent2")
    my_context, my_csrf = mine.field("context"), mine.field("csrf_token")
    their_context, their_csrf = theirs.field("context"), theirs.field("csrf_token")
    context = token_from(context_spec, my_context, their_context, my_csrf)
    csrf = token_from(csrf_spec, my_csrf, their_csrf, my_context)
    if (context, csrf) in {(my_context, my_csrf), (their_context, their_csrf)}:
        return  # a genuine pair: not this test's business
    before = simulator.stats()["requests"]

    response = mine.save(context=context, csrf_token=csrf)

    assert outcome_of(response) == "invalid"
    if response.status_code == 413:  # a token of many KiB: over the body cap
        assert oversized([("context", context or ""), ("csrf_token", csrf or "")])
    else:
        assert response.status_code == 403, response.status_code
        assert "Open it again from the CRM" in response.get_data(as_text=True)
    assert simulator.stats()["requests"] == before
    assert simulator.get_call(call.ucid).attempts == []
