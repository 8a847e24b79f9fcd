"""The in-page call context (webapp/panel/context.py): itsdangerous's URL-safe timed tokens,
made without its per-token signer and zlib work, and still the same tokens both ways."""

import time

import pytest
from itsdangerous import URLSafeTimedSerializer

from webapp.panel import context
from webapp.panel.launch import Launch

SECRET = "s" * 40


def plain():
    """itsdangerous's own serializer, as the context was made before issue 21."""
    return URLSafeTimedSerializer(SECRET, salt=context.SALT)


def test_a_context_is_the_token_itsdangerous_makes():
    token = context.issue(Launch("2116203531161529", "agent1", "914071327663"), SECRET, "hi")
    assert plain().loads(token, max_age=60) == {
        "u": "2116203531161529", "a": "agent1", "d": "914071327663", "l": "hi",
    }  # fmt: skip
    payload = token.rsplit(".", 2)[0]
    assert plain().dump_payload(plain().loads(token)).decode() == payload  # not compressed


@pytest.mark.parametrize(
    ("ids", "compressed"),
    [
        (("2116203531161529", "agent1", "914071327663"), False),
        (("1" * 200, "a" * 200, "d" * 200), True),  # itsdangerous compressed it: a leading "."
    ],
)
def test_a_context_itsdangerous_made_still_reads(ids, compressed):
    token = plain().dumps(dict(zip("uad", ids, strict=True)))
    assert token.startswith(".") == compressed
    call = context.read(token, SECRET, 60)
    assert (call.ucid, call.agent_id, call.did) == ids


def test_another_secret_or_a_changed_token_is_refused():
    token = context.issue(Launch("1", "agent1", "2"), SECRET)
    with pytest.raises(context.ContextError) as refused:
        context.read(token, "t" * 40, 60)
    assert not refused.value.expired
    with pytest.raises(context.ContextError):
        context.read(token[:-2] + ("AA" if not token.endswith("AA") else "BB"), SECRET, 60)


def test_one_signer_with_its_key_derived_once_serves_every_token():
    from unittest import mock

    from itsdangerous import TimestampSigner

    serializer = context._serializer("k" * 40)
    signer = serializer.make_signer()
    assert isinstance(signer, context._Signer) and serializer.make_signer() is signer
    with mock.patch.object(TimestampSigner, "derive_key", autospec=True) as derive:
        derive.return_value = b"k" * 20
        fresh = context._Signer("x" * 40, salt=context.SALT)
        for _ in range(3):
            fresh.sign(b"payload")
    assert derive.call_count == 1  # not once per token


@pytest.mark.parametrize("language", [None, "hi"])
@pytest.mark.parametrize(
    "ids",
    [
        ("2116203531161529", "agent1", "914071327663"),
        ("1" * 200, "a" * 200, "d" * 200),  # long: itsdangerous would compress it
        ("U-1:x@y+z", "agent.9", "0"),
        ('u"1\\', "agënt", "d\n</script>"),  # what JSON escapes, were it ever given
    ],
)
def test_a_context_is_byte_for_byte_the_serializer_s_own(ids, language):
    launch = Launch(*ids)
    payload = dict(zip("uad", ids, strict=True)) | ({"l": language} if language else {})
    own = context._serializer(SECRET)  # itsdangerous's dumps, with the context's settings
    for _ in range(5):  # both made within one second: the same timestamp
        second = int(time.time())
        made, expected = context.issue(launch, SECRET, language), own.dumps(payload)
        if int(time.time()) == second:
            break
    assert made == expected
    assert plain().loads(made, max_age=60) == payload
