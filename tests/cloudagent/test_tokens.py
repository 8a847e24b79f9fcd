"""One token per account across threads and processes, refreshed rarely, never over budget."""

import base64
import json
import multiprocessing
import os
import stat

import pytest

from tests.helpers import DID, Clock, save_many
from webapp.cloudagent import SqliteTokenStore, Token
from webapp.cloudagent.tokens import MintBudgetExhausted, MintFailed, token_expiry


def jwt(claims: dict) -> str:
    part = base64.urlsafe_b64encode(json.dumps(claims).encode()).rstrip(b"=").decode()
    return f"eyJhbGciOiJIUzI1NiJ9.{part}.c2ln"


def test_expiry_is_read_from_the_jwt_exp_claim():
    assert token_expiry(jwt({"exp": 1000 + 1800}), now=1000) == 2800


@pytest.mark.parametrize(
    "token", ["opaque-token", jwt({"sub": "x"}), jwt({"exp": "soon"}), jwt({"exp": 10}), "a.!!!.c"]
)
def test_an_unreadable_expiry_falls_back_to_an_hour(token):
    assert token_expiry(token, now=1000) == 1000 + 3600


def test_the_store_file_is_private(token_store):
    assert stat.S_IMODE(os.stat(token_store.path).st_mode) == 0o600


def test_failed_mints_use_budget_but_bad_credentials_only_hold_back(tmp_path):
    clock = Clock()
    store = SqliteTokenStore(tmp_path / "t.sqlite3", clock=clock)

    def lost():
        raise MintFailed("lost_answer")

    def refused():
        raise MintFailed("Invalid userName or apiKey", counted=False, hold=30)

    with pytest.raises(MintFailed):
        store.replace("acme", None, lost)
    assert store.mints_in_window("acme") == 1
    with pytest.raises(MintFailed):
        store.replace("acme", None, refused)
    assert store.mints_in_window("acme") == 1
    with pytest.raises(MintBudgetExhausted, match="cooldown"):
        store.replace("acme", None, lost)  # not even tried for a while
    clock.now += 31
    with pytest.raises(MintFailed):
        store.replace("acme", None, lost)
    assert store.mints_in_window("acme") == 2
    assert store.current("acme") is None


def test_a_fresh_stored_token_is_reused_not_reminted(tmp_path):
    store = SqliteTokenStore(tmp_path / "t.sqlite3")
    minted = []

    def mint():
        minted.append(1)
        return Token(f"t{len(minted)}", 10**10)

    first = store.replace("acme", None, mint)
    assert store.replace("acme", None, mint) == first  # another caller, same token
    assert store.replace("acme", "an-older-token", mint) == first  # refused one was replaced
    assert store.replace("acme", first.value, mint).value == "t2"  # ours refused: mint
    assert len(minted) == 2


def test_one_mint_for_many_processes_and_threads(upstream, simulator, tmp_path):
    """4 processes x 50 saves on 8 threads each, from no token, then from an expired token,
    then after an outside party minted (ours invalid): one mint by us each time."""
    call = simulator.start_call("agent1", DID)
    store = str(tmp_path / "tokens.sqlite3")
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(4) as pool:

        def run_round():
            results = pool.starmap(save_many, [(upstream.url, store, call.ucid, DID, 50)] * 4)
            return [kind for kinds in results for kind in kinds]

        assert run_round() == ["queued"] * 200
        assert simulator.stats()["mints"]["demo"] == 1

        simulator.expire_token("demo")
        assert run_round() == ["queued"] * 200
        assert simulator.stats()["mints"]["demo"] == 2

        simulator.rotate_token("demo")  # counts as a mint of the account, not ours
        assert run_round() == ["queued"] * 200
        assert simulator.stats()["mints"]["demo"] == 4
    assert simulator.stats()["requests"]["generateToken"] == 3


def test_the_eleventh_mint_in_an_hour_is_never_attempted(timed):
    sim, client, clock = timed
    store = client.token_store
    call = sim.start_call("agent1", DID)

    def save():
        return client.set_disposition(
            agent_id="agent1", did=DID, ucid=call.ucid, disposition="Interested"
        )

    assert save().kind == "queued"
    for _ in range(9):
        clock.now += 60
        sim.expire_token("demo")
        assert save().kind == "queued"
    assert sim.stats()["mints"]["demo"] == 10

    clock.now += 60
    sim.expire_token("demo")
    before = sim.stats()["requests"]
    outcome = save()
    assert (outcome.kind, outcome.reason) == ("unavailable", "mint_budget")
    after = sim.stats()["requests"]
    assert after["generateToken"] == before["generateToken"]  # not even tried
    assert after["Set"] == before["Set"] + 1  # the one refused with Token Expired
    with pytest.raises(MintBudgetExhausted):
        store.replace(client.account, store.current(client.account).value, client._mint)

    clock.now += 3600 - 9 * 60  # the first mint leaves the window
    assert save().kind == "queued"
    assert sim.stats()["mints"]["demo"] == 11


def test_a_token_near_expiry_is_refreshed_before_it_is_refused(timed):
    sim, client, clock = timed
    call = sim.start_call("agent1", DID)
    save = lambda: client.set_disposition(  # noqa: E731
        agent_id="agent1", did=DID, ucid=call.ucid, disposition="Interested"
    )
    assert save().kind == "queued"
    clock.now += 3600 - 60  # a minute before the token's exp
    assert save().kind == "queued"
    stats = sim.stats()
    assert stats["mints"]["demo"] == 2
    assert stats["requests"]["Set"] == 2  # nothing was refused on the way


def test_a_failing_token_endpoint_is_not_asked_again_on_every_request(client, simulator):
    call = simulator.start_call("agent1", DID)
    simulator.add_fault("generateToken", "http_503", count=-1)
    outcomes = [
        client.set_disposition(
            agent_id="agent1", did=DID, ucid=call.ucid, disposition="Interested"
        ).reason
        for _ in range(10)
    ]
    assert simulator.stats()["requests"]["generateToken"] == 1  # then held back a minute
    assert outcomes == ["mint_failed"] + ["mint_budget"] * 9
    assert client.token_store.mints_in_window(client.account) == 1  # the budget is intact


def test_a_stale_copy_of_the_token_costs_no_save(make_client, simulator):
    """Process B still holds the token of two mints ago; the stored one is dead too (an
    outside mint): B tries the stored one, then mints once, and the save goes through.
    (A storm of outside mints is tests/cloudagent/test_token_conflicts.py's.)"""
    call = simulator.start_call("agent1", DID)
    a, b = make_client(), make_client()  # two processes sharing one store

    def save(client):
        return client.set_disposition(
            agent_id="agent1", did=DID, ucid=call.ucid, disposition="Interested"
        ).kind

    assert save(a) == "queued" and save(b) == "queued"  # b copies a's token
    simulator.expire_token("demo")
    assert save(a) == "queued"  # a mints anew: b's copy is now two tokens old
    simulator.rotate_token("demo")
    before = simulator.stats()["requests"]["generateToken"]
    assert save(b) == "queued"
    assert simulator.stats()["requests"]["generateToken"] == before + 1
