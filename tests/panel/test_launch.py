"""The launch link contract: canonical string, signature, freshness, refusals."""

import hashlib
import hmac

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from werkzeug import Request
from werkzeug.datastructures import MultiDict

from tests.helpers import launch_path
from webapp.panel.launch import LaunchError, canonical, plain_pairs, sign, signed_query, verify

SECRET = "launch-secret-0123456789"
NOW = 1_800_000_000


def test_the_canonical_string_and_signature_match_the_documented_recipe():
    params = {"ucid": "U1", "did": "D1", "agentID": "A1", "ts": "5", "callerID": "+91 98"}
    assert canonical(params | {"sig": "x"}) == "agentID=A1\ncallerID=+91 98\ndid=D1\nts=5\nucid=U1"
    expected = hmac.new(
        SECRET.encode(),
        "\n".join(f"{k}={v}" for k, v in sorted(params.items())).encode(),
        hashlib.sha256,
    ).hexdigest()
    assert sign(params, SECRET) == expected


def good(**extra):
    return signed_query(
        {"ucid": "1234", "agentID": "agent1", "did": "914071327663"} | extra, SECRET, now=NOW
    )


def check(query, **kw):
    items = query if isinstance(query, list) else list(query.items())
    return verify(items, SECRET, max_age=600, now=kw.pop("now", NOW), **kw)


def test_a_good_link_gives_the_call_and_its_extra_parameters():
    launch = check(good(callerID="+919800000000", campaignID="7"))
    assert (launch.ucid, launch.agent_id, launch.did) == ("1234", "agent1", "914071327663")
    assert launch.extra == {"callerID": "+919800000000", "campaignID": "7"}


@pytest.mark.parametrize(
    "now, accepted",
    [(NOW + 600, True), (NOW + 601, False), (NOW - 60, True), (NOW - 61, False)],
)
def test_freshness_window(now, accepted):
    if accepted:
        check(good(), now=now)
    else:
        with pytest.raises(LaunchError):
            check(good(), now=now)


def tampered(change):
    query = good(callerID="+919800000000")
    change(query)
    return query


@pytest.mark.parametrize(
    "query",
    [
        tampered(lambda q: q.update(ucid="9999")),
        tampered(lambda q: q.update(callerID="+910000000000")),
        tampered(lambda q: q.update(extra="added")),
        tampered(lambda q: q.pop("callerID")),
        tampered(lambda q: q.pop("sig")),
        tampered(lambda q: q.update(sig=q["sig"].upper())),
        tampered(lambda q: q.update(sig="0" * 64)),
        tampered(lambda q: q.pop("ts")),
        signed_query({"agentID": "agent1", "did": "914071327663"}, SECRET, now=NOW),
        signed_query({"ucid": "", "agentID": "a", "did": "d"}, SECRET, now=NOW),
        signed_query({"ucid": "1<script>", "agentID": "a", "did": "d"}, SECRET, now=NOW),
        signed_query({"ucid": "1", "agentID": "a", "did": "d", "note": "x\ny"}, SECRET, now=NOW),
        list(good().items()) + [("ucid", "1234")],
    ],
    ids=[
        "ucid changed",
        "extra changed",
        "parameter added",
        "parameter removed",
        "sig removed",
        "sig uppercase",
        "sig zero",
        "ts removed",
        "ucid missing",
        "ucid empty",
        "ucid with markup",
        "newline in a value",
        "parameter twice",
    ],
)
def test_refused_links(query):
    with pytest.raises(LaunchError):
        check(query)


def test_signing_off_skips_only_the_signature():
    assert check([("ucid", "1"), ("agentID", "a"), ("did", "d")], signing=False).ucid == "1"
    with pytest.raises(LaunchError):
        check([("agentID", "a"), ("did", "d")], signing=False)


PLAIN_LINKS = [
    "ucid=1234&agentID=agent1&did=914071327663",
    "ucid=1234&agentID=agent1&did=914071327663&lang=hi&theme=dark",
    "ucid=1234&agentID=agent1&did=914071327663&ucid=1234",
    "ucid=1234&agentID=&did=914071327663&x",
]


def opens(items):
    try:
        return verify(items, SECRET, max_age=600, signing=False)
    except LaunchError:
        return "refused"


@settings(max_examples=400, deadline=None)
@given(st.text(alphabet="ab=&%+2F9é ", max_size=24) | st.sampled_from(PLAIN_LINKS))
def test_a_query_read_without_werkzeug_reads_as_werkzeug_reads_it(query):
    """The launch view's short way through a plain query (plain_pairs) gives the very pairs
    werkzeug's request.args would (which groups a repeated name's values: verify refuses a
    repeated name either way), and leaves every other query to werkzeug."""
    pairs = plain_pairs(query)
    if query.isascii() and "%" not in query and "+" not in query:
        args = Request.from_values(query_string=query).args
        assert list(MultiDict(pairs).items(multi=True)) == list(args.items(multi=True))
        assert opens(pairs) == opens(args.items(multi=True))
    else:
        assert pairs is None


def test_a_link_with_escaped_values_and_a_plain_one_both_open(web, call):
    plain = launch_path(call.ucid)
    escaped = launch_path(call.ucid, callerID="+91 98450 12345", note="a&b=c")
    assert plain_pairs(plain.partition("?")[2]) is not None
    assert plain_pairs(escaped.partition("?")[2]) is None
    for path in (plain, escaped):
        page = web.get(path)
        assert page.status_code == 200, path
        assert call.ucid in page.get_data(as_text=True)
