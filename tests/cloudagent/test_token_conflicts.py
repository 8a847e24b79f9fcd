"""Another system minting tokens for the account is detected and not fought: after the second
conflict in an hour the service stops minting for a while, says why, and recovers alone."""

import logging

from tests.helpers import CONFLICT_ACCOUNT as ACCOUNT
from tests.helpers import DID, Clock, Minter, check_the_conflict_rule, conflict_errors
from webapp.cloudagent import SqliteTokenStore


def test_two_conflicts_in_an_hour_stop_minting_for_a_while(tmp_path, caplog):
    clock = Clock()
    check_the_conflict_rule(SqliteTokenStore(tmp_path / "t.sqlite3", clock=clock), clock, caplog)


def test_expired_tokens_and_tokens_not_ours_are_no_conflict(tmp_path):
    clock = Clock()
    store = SqliteTokenStore(tmp_path / "t.sqlite3", clock=clock)
    mint = Minter(clock)
    token = store.replace(ACCOUNT, None, mint)
    for _ in range(3):  # "Token Expired": the usual renewal, as often as it happens
        token = store.replace(ACCOUNT, token.value, mint)
    for _ in range(3):  # "Invalid Token" for a token past its expiry: it was just old
        clock.now += 3601
        token = store.replace(ACCOUNT, token.value, mint, conflict=True)
    for _ in range(3):  # a token that is not the stored one: someone's stale copy
        assert store.replace(ACCOUNT, "not-ours", mint, conflict=True) == token
    assert mint.count == 7
    assert store.conflict_until(ACCOUNT) is None


def test_a_sign_in_storm_costs_at_most_three_mint_attempts_an_hour(timed, caplog):
    """Someone else signs in before every save, all hour: we stop fighting after the second
    conflict, tell the agent why (nothing saved), and start again once they stop."""
    sim, client, clock = timed

    def save():
        call = sim.start_call("agent1", DID)
        return client.set_disposition(
            agent_id="agent1", did=DID, ucid=call.ucid, disposition="Interested"
        )

    started = clock.now
    outcomes, blocked, sent = [], [], []
    with caplog.at_level(logging.ERROR, logger="webapp.cloudagent"):
        while clock.now < started + 3600:
            sim.rotate_token("demo")
            sets = sim.stats()["requests"]["Set"]
            outcomes.append(save())
            sent.append(sim.stats()["requests"]["Set"] - sets)
            blocked.append(client.sign_in_conflict() is not None)
            clock.now += 120
    mints = sim.stats()["requests"]["generateToken"]
    assert mints <= 3, mints
    reasons = [outcome.reason for outcome in outcomes]
    assert reasons[:3] == ["queued", "queued", "token_conflict"]
    # The other party's mints use up CloudAgent's own 10 an hour too, so a later mint of
    # ours may be refused: that is said as such, and costs no more attempts.
    assert set(reasons) <= {"queued", "token_conflict", "mint_failed"}
    assert reasons.count("queued") <= mints  # each new token of ours saved once, then died
    conflict = next(o for o in outcomes if o.reason == "token_conflict")
    assert conflict.kind == "unavailable"
    assert "another system keeps signing in to this CloudAgent account" in conflict.message
    assert "Nothing was saved" in conflict.message
    assert 1 <= len(conflict_errors(caplog)) <= mints - 1  # one per hold, not one per save
    # Once a save was refused for the conflict, the next ones send nothing at all.
    for before, reason, count in zip(reasons, reasons[1:], sent[1:], strict=False):
        if before == reason == "token_conflict":
            assert count == 0
    # What /readyz shows: blocked whenever a save was refused for the conflict, never
    # right after one went through (a failed mint may use the conflict's last attempt).
    for reason, shown in zip(reasons, blocked, strict=True):
        assert shown if reason == "token_conflict" else reason != "queued" or not shown

    # The other party stops. Its mints used up CloudAgent's own limit for the hour, so
    # CloudAgent may refuse ours a while longer; then saves go through again, by themselves.
    stopped, recovered_at = clock.now, None
    while recovered_at is None and clock.now < stopped + 3 * 3600:
        clock.now += 60
        if save().kind == "queued":
            recovered_at = clock.now
    assert recovered_at is not None, "never recovered"
    assert recovered_at - stopped <= 2 * 3600 + 120
    assert client.sign_in_conflict() is None
