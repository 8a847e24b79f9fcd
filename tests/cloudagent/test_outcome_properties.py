"""Property-based tests of reading CloudAgent's answers: whatever body CloudAgent sends, it
reads into one of the outcomes, with a message, and a disposition list is kept clean."""

from __future__ import annotations

import json

from hypothesis import example, given, settings
from hypothesis import strategies as st

from webapp.cloudagent.outcomes import (
    ALREADY_DISPOSED,
    DISPOSITION_MAX,
    QUEUED,
    RAW_LIMIT,
    REJECTED,
    SAVED,
    UNAVAILABLE,
    dispositions_from,
    parse_reply,
    set_outcome,
)
from webapp.simulator import Simulator

UPSTREAM_KINDS = {QUEUED, SAVED, ALREADY_DISPOSED, REJECTED, UNAVAILABLE}
DISPOSITIONS = tuple(Simulator().account("demo").dispositions)


# -- reading upstream bodies -----------------------------------------------------------------

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text()
    | st.sampled_from(["Success", "success", " Success ", "Fail", "false", "Error", "", " "])
)
json_values = st.recursive(
    json_scalars,
    lambda children: (
        st.lists(children, max_size=5)
        | st.dictionaries(
            st.sampled_from(["status", "details", "message", "data", "name", "disposition"])
            | st.text(max_size=8),
            children,
            max_size=5,
        )
    ),
    max_leaves=25,
)
UPSTREAM_TEXTS = [
    "Disposition Queued Successfully",
    "Disposition saved successfully",
    "This call is already Disposed.",
    "Invalid Disposition",
    "Token expired",
    "Invalid token",
    "Agent is not on this call.",
    "Unable to Dispose . Please retry after some time.",
    "Invalid user details",
]
name_items = (
    st.text(max_size=300)
    | st.sampled_from(list(DISPOSITIONS) + ["  Interested  ", "", " ", "x" * 251, "x" * 250])
    | st.fixed_dictionaries(
        {},
        optional={
            k: st.text(max_size=20) | json_scalars
            for k in ("disposition", "name", "reason", "dispositionName")
        },
    )
    | json_values
)
texts_or_lists = st.sampled_from(UPSTREAM_TEXTS) | st.lists(name_items, max_size=8) | json_values
cloudagent_like = st.fixed_dictionaries(
    {},
    optional={
        "status": json_scalars,
        "details": texts_or_lists,
        "message": texts_or_lists,
        "data": texts_or_lists,
    },
)
bodies = json_values | cloudagent_like


def as_json(value, ensure_ascii, indent):
    return json.dumps(value, ensure_ascii=ensure_ascii, indent=indent)


raw_bodies = (
    st.builds(as_json, bodies, st.booleans(), st.sampled_from([None, 0, 2]))
    | st.text()
    | st.text(alphabet=st.sampled_from('{}[]":,0123456789 .eE+-tfnrulsa\\u'), max_size=60)
    | st.sampled_from(
        [
            "",
            "   ",
            "null",
            "NaN",
            "1e999",
            "1" * 5000,
            '{"status": "\\ud800", "details": ["\\udc00"]}',
            '{"status": "Success", "details": ["a", "a ", " a"]}',
            '{"status": "Success", "status": 1}',
            "<html><body>502 Bad Gateway</body></html>",
        ]
    )
)
http_statuses = st.integers(-1, 1000) | st.sampled_from([200, 400, 401, 500, 502, 504])


def body_of(raw):
    """The JSON value in raw, or None."""
    try:
        return json.loads(raw) if raw.strip() else None
    except (ValueError, RecursionError):
        return None


def check_reading(http_status, raw):
    reply = parse_reply(http_status, raw)
    assert reply.body is None or isinstance(reply.body, dict)
    assert len(reply.raw) <= RAW_LIMIT and raw.startswith(reply.raw)

    outcome = set_outcome(reply)
    assert outcome.kind in UPSTREAM_KINDS
    assert isinstance(outcome.message, str) and outcome.message.strip()
    body = body_of(raw)
    if not (isinstance(body, dict) and isinstance(body.get("status"), str)):
        assert outcome.kind == UNAVAILABLE

    names = dispositions_from(reply)
    assert names is None or (isinstance(names, tuple) and names)
    for name in names or ():
        assert isinstance(name, str)
        assert name == name.strip() and 0 < len(name) <= DISPOSITION_MAX
    assert len(set(names or ())) == len(names or ())
    return reply, names


@settings(max_examples=1000, deadline=None, database=None)
@given(http_status=http_statuses, raw=raw_bodies)
def test_any_upstream_body_reads_into_an_outcome(http_status, raw):
    check_reading(http_status, raw)


@settings(max_examples=300, deadline=None, database=None)
@given(items=st.lists(st.text(max_size=300) | st.sampled_from(["a", " a", "a "]), max_size=10))
def test_a_list_of_names_is_kept_in_order_stripped_and_once(items):
    raw = json.dumps({"status": "Success", "details": items})
    _, names = check_reading(200, raw)
    expected = [s.strip() for s in items if 0 < len(s.strip()) <= DISPOSITION_MAX]
    assert names == (tuple(dict.fromkeys(expected)) or None)


@settings(max_examples=60, deadline=None, database=None)
@given(
    depth=st.integers(1, 200_000),
    shape=st.sampled_from(["list", "object", "inside"]),
    http_status=st.sampled_from([200, 502]),
)
@example(depth=100_000, shape="list", http_status=200)
def test_a_deeply_nested_body_reads_into_an_outcome(depth, shape, http_status):
    raw = {
        "list": "[" * depth + "]" * depth,
        "object": '{"a":' * depth + "1" + "}" * depth,
        "inside": '{"status":"Success","details":' + "[" * depth + "]" * depth + "}",
    }[shape]
    check_reading(http_status, raw)
