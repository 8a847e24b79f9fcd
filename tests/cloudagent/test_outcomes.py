"""Every CloudAgent answer of the API page, and the faults around it, read into an outcome."""

import json

import pytest

from tests.helpers import DOCUMENTED_RESPONSES
from webapp.cloudagent.outcomes import (
    ALREADY_DISPOSED,
    QUEUED,
    REJECTED,
    SAVED,
    UNAVAILABLE,
    dispositions_from,
    parse_reply,
    refusal_outcome,
    set_outcome,
)

CASES = DOCUMENTED_RESPONSES

# The 'kind' grouping of the case file -> (outcome kind, reason) the agent is shown.
EXPECTED = {
    "token": (UNAVAILABLE, "token"),
    "configuration": (REJECTED, "configuration"),
    "queued": (QUEUED, "queued"),
    "saved": (SAVED, "saved"),
    "already_disposed": (ALREADY_DISPOSED, "already_disposed"),
    "call_context": (REJECTED, "call_context"),
    "input": (REJECTED, "input"),
}


@pytest.mark.parametrize("case", CASES, ids=[c["when"] for c in CASES])
def test_every_documented_answer_has_its_outcome(case):
    reply = parse_reply(200, json.dumps(case["body"]))
    outcome = set_outcome(reply)
    assert (outcome.kind, outcome.reason) == EXPECTED[case["kind"]]
    assert reply.token_refused == (case["kind"] == "token")
    # The agent's words are ours, never the upstream's text echoed back.
    assert outcome.message and outcome.message != reply.text
    assert outcome.upstream_text == (case["body"].get("details") or case["body"].get("message"))


def test_queued_and_saved_say_different_things():
    queued = set_outcome(
        parse_reply(200, '{"status":"Success","message":"Disposition Queued Successfully"}')
    )
    saved = set_outcome(
        parse_reply(200, '{"details":"Disposition saved successfully","status":"Success"}')
    )
    assert "when the call ends" in queued.message
    assert "when the call ends" not in saved.message


@pytest.mark.parametrize(
    "status, raw, reason",
    [
        (200, "", "bad_response"),
        (200, "not json", "bad_response"),
        (200, "[1, 2]", "bad_response"),
        (200, "42", "bad_response"),
        (200, '{"message": "Disposition saved successfully"}', "bad_response"),
        (500, "<html><body>Internal Server Error</body></html>", "bad_response"),
        (502, "<html>Bad gateway</html>", "bad_response"),
        (
            200,
            '{"status":"Error","details":"Unable to Dispose . Please retry after some time."}',
            "busy",
        ),
        (200, '{"status":"Error","details":"Something else broke"}', "upstream_error"),
    ],
)
def test_unreadable_or_failed_answers_are_unavailable(status, raw, reason):
    outcome = set_outcome(parse_reply(status, raw))
    assert (outcome.kind, outcome.reason) == (UNAVAILABLE, reason)
    assert outcome.http_status == status
    assert outcome.raw == raw


def test_status_is_read_in_any_case():
    assert (
        set_outcome(
            parse_reply(200, '{"status":"SUCCESS","details":"Disposition saved successfully"}')
        ).kind
        == SAVED
    )
    assert (
        set_outcome(
            parse_reply(200, '{"status":"fail","details":"This call is already Disposed."}')
        ).kind
        == ALREADY_DISPOSED
    )


def test_a_refused_callback_time_is_the_agents_to_change():
    """Assumed (docs/cloudagent.md): the refusal names callBackTime."""
    outcome = set_outcome(parse_reply(200, '{"details":"Invalid callBackTime","status":"Fail"}'))
    assert (outcome.kind, outcome.reason) == (REJECTED, "input")
    assert "callback time" in outcome.message and "callBackTime" not in outcome.message


def test_an_unknown_refusal_is_rejected_and_keeps_the_upstream_text_for_the_log():
    outcome = refusal_outcome(
        parse_reply(200, '{"status":"Fail","details":"<b>Campaign closed</b>"}')
    )
    assert outcome.kind == REJECTED and outcome.reason == "refused"
    assert outcome.upstream_text == "<b>Campaign closed</b>"
    assert "<b>" not in outcome.message


def test_a_huge_body_is_kept_only_in_part():
    outcome = set_outcome(parse_reply(200, "x" * 100_000))
    assert len(outcome.raw) == 2000


@pytest.mark.parametrize(
    "body, names",
    [
        (
            {"status": "Success", "details": ["Interested", "Call back"]},
            ("Interested", "Call back"),
        ),
        (
            {
                "status": "success",
                "data": [
                    {"disposition": "A"},
                    {"name": "B"},
                    {"reason": "C"},
                    {"dispositionName": "D"},
                ],
            },
            ("A", "B", "C", "D"),
        ),
        ({"status": "Success", "message": [" A ", "A", "", 7, None, "x" * 251]}, ("A",)),
        ({"status": "Success", "details": "Interested"}, None),
        ({"status": "Success", "details": []}, None),
        (
            {"status": "Fail", "message": "No disposition found for campaign ID: X and user: Y"},
            None,
        ),
    ],
)
def test_disposition_lists_are_read_defensively(body, names):
    assert dispositions_from(parse_reply(200, json.dumps(body))) == names
