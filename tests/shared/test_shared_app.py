"""The service with WIDGET_REDIS_URL (and WIDGET_DATABASE_URL) set: the Redis stores are the
ones in use, the probes check them, and a Redis that went away is an 'unavailable' answer
saying so, never a 500, never a mint, and never a row left 'unknown'."""

import pytest

from tests.helpers import DID, outcome_of
from webapp.cloudagent import RedisDispositionCache, RedisTokenStore
from webapp.ratelimit import RedisRateLimiter


@pytest.fixture
def shared_app(make_app, redis_url, pg_url):
    app = make_app(WIDGET_REDIS_URL=redis_url, WIDGET_DATABASE_URL=pg_url)
    yield app
    app.extensions["audit"].close()


def test_with_redis_set_every_shared_store_is_in_redis(shared_app, simulator, tmp_path, panels):
    assert isinstance(shared_app.extensions["cloudagent"].token_store, RedisTokenStore)
    assert isinstance(shared_app.extensions["dispositions"], RedisDispositionCache)
    assert isinstance(shared_app.extensions["save_limiter"], RedisRateLimiter)
    web = shared_app.test_client()
    call = simulator.start_call("agent1", DID)
    assert outcome_of(panels.on(web).open(call.ucid).save()) == "queued"
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # no SQLite file anywhere
    ready = web.get("/readyz")
    assert ready.status_code == 200, ready.json
    assert ready.json["checks"] == {
        "audit_log": "ok",
        "rate_limits": "ok",
        "token_store": "ok",
        "dispositions_cache": "ok",
    }


def test_two_apps_on_one_redis_share_the_token_the_list_and_the_limit(
    simulator, tmp_path, redis_url, panels, make_app
):
    one = make_app(WIDGET_REDIS_URL=redis_url, WIDGET_DATA_DIR=str(tmp_path / "a")).test_client()
    two = make_app(
        WIDGET_REDIS_URL=redis_url,
        WIDGET_DATA_DIR=str(tmp_path / "b"),
        WIDGET_SAVES_PER_MINUTE="3",
    ).test_client()
    call = simulator.start_call("agent1", DID)
    panels.on(one).open(call.ucid).save()
    panel = panels.on(two).open(call.ucid)
    stats = simulator.stats()
    assert stats["requests"]["generateToken"] == 1  # the second app used the first's token
    assert stats["requests"]["get"] == 1  # and its disposition list
    assert [outcome_of(panel.save()) for _ in range(2)] == ["queued", "queued"]
    limited = panel.save()  # the 4th save of agent1 this minute, counted across both apps
    assert limited.status_code == 429


def test_redis_down_answers_unavailable_and_readiness_names_it(
    simulator, down_redis_url, panels, make_app
):
    app = make_app(WIDGET_REDIS_URL=down_redis_url)
    web = app.test_client()
    call = simulator.start_call("agent1", DID)
    panel = panels.on(web).open(call.ucid)  # the list cannot be had: no token
    assert panel.response.status_code == 200
    response = panel.save()
    assert response.status_code == 200 and outcome_of(response) == "unavailable"
    body = response.get_data(as_text=True)
    assert "shared store is unreachable" in body and "nothing was sent" in body
    assert "sign" not in body.lower() and "token" not in body.lower()
    assert simulator.stats()["requests"]["generateToken"] == 0
    (row,) = app.extensions["audit"].rows()
    assert (row["outcome"], row["reason"]) == ("unavailable", "store_unreachable")
    ready = web.get("/readyz")
    assert ready.status_code == 503
    assert ready.json["checks"] == {
        "audit_log": "ok",
        "rate_limits": "failed",
        "token_store": "failed",
        "dispositions_cache": "failed",
    }


def test_the_redis_password_is_never_logged(redis_server, caplog, capfd, make_app):
    caplog.set_level("DEBUG")
    url = redis_server.url.replace("redis://", "redis://:n0t-the-password@")
    app = make_app(WIDGET_REDIS_URL=url)
    app.test_client().get("/readyz")  # Redis refuses the AUTH: the probe fails
    text = caplog.text + capfd.readouterr().err
    assert "n0t-the-password" not in text
