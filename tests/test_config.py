"""Configuration: read once, validated, and refused with one line naming the variable."""

import pytest

from tests.helpers import LIVE
from webapp.config import DEFAULT_CLOUDAGENT_URL, DEFAULT_PAUSE_REASONS, ConfigError, load_settings


def test_no_username_is_demo_mode_with_defaults(tmp_path):
    settings = load_settings({}, instance_path=str(tmp_path))
    assert settings.demo
    assert settings.cloudagent_url == DEFAULT_CLOUDAGENT_URL
    assert settings.launch_max_age == 600
    assert settings.cloudagent_auth == "token"
    assert settings.frame_ancestors == ("'self'", "http://localhost:8000")  # the demo CRM page
    assert settings.context_max_age == 4 * 3600
    assert settings.pause_reasons == DEFAULT_PAUSE_REASONS
    assert settings.data_dir == tmp_path
    assert len(settings.secret_key) >= 32 and settings.secret_key != settings.launch_secret
    assert settings.callback_dispositions == ()  # the default rule: names saying "call back"
    assert settings.cloudagent_timezone == "Asia/Kolkata"


def test_a_full_configuration_is_read():
    settings = load_settings(
        LIVE
        | {
            "WIDGET_LAUNCH_MAX_AGE": "120",
            "WIDGET_CLOUDAGENT_URL": "https://api.ccaas.ozonetel.com/",
            "WIDGET_CLOUDAGENT_AUTH": "apikey",
            "WIDGET_FRAME_ANCESTORS": "https://crm.example.com https://other.example:8443",
            "WIDGET_PAUSE_REASONS": "Tea, Lunch ,Coaching",
            "WIDGET_DATA_DIR": "/var/lib/widget",
            "WIDGET_CALLBACK_DISPOSITIONS": "Follow up , Ring back",
            "WIDGET_CLOUDAGENT_TIMEZONE": "Asia/Dubai",
        }
    )
    assert not settings.demo
    assert settings.launch_max_age == 120
    assert settings.cloudagent_url == "https://api.ccaas.ozonetel.com"
    assert settings.cloudagent_auth == "apikey"
    assert settings.frame_ancestors_header == "https://crm.example.com https://other.example:8443"
    assert settings.pause_reasons == ("Tea", "Lunch", "Coaching")
    assert str(settings.data_dir) == "/var/lib/widget"
    assert settings.callback_dispositions == ("Follow up", "Ring back")
    assert settings.cloudagent_timezone == "Asia/Dubai"


def test_the_api_key_never_shows_in_the_settings_repr():
    assert LIVE["WIDGET_CLOUDAGENT_API_KEY"] not in repr(load_settings(LIVE))


@pytest.mark.parametrize(
    "change, variable",
    [
        ({"WIDGET_CLOUDAGENT_API_KEY": ""}, "WIDGET_CLOUDAGENT_API_KEY"),
        ({"WIDGET_SECRET_KEY": ""}, "WIDGET_SECRET_KEY"),
        ({"WIDGET_LAUNCH_SECRET": ""}, "WIDGET_LAUNCH_SECRET"),
        ({"WIDGET_LAUNCH_SECRET": "short"}, "WIDGET_LAUNCH_SECRET"),
        ({"WIDGET_LAUNCH_MAX_AGE": "ten"}, "WIDGET_LAUNCH_MAX_AGE"),
        ({"WIDGET_LAUNCH_MAX_AGE": "-5"}, "WIDGET_LAUNCH_MAX_AGE"),
        ({"WIDGET_LAUNCH_SIGNING": "maybe"}, "WIDGET_LAUNCH_SIGNING"),
        ({"WIDGET_CLOUDAGENT_URL": "ftp://x"}, "WIDGET_CLOUDAGENT_URL"),
        ({"WIDGET_CLOUDAGENT_URL": "in1-ccaas-api.ozonetel.com"}, "WIDGET_CLOUDAGENT_URL"),
        ({"WIDGET_CLOUDAGENT_AUTH": "basic"}, "WIDGET_CLOUDAGENT_AUTH"),
        ({"WIDGET_FRAME_ANCESTORS": "*"}, "WIDGET_FRAME_ANCESTORS"),
        ({"WIDGET_FRAME_ANCESTORS": "https://crm.example.com/page"}, "WIDGET_FRAME_ANCESTORS"),
        ({"WIDGET_PAUSE_REASONS": "Tea,Tea"}, "WIDGET_PAUSE_REASONS"),
        ({"WIDGET_CLOUDAGENT_READ_TIMEOUT": "0"}, "WIDGET_CLOUDAGENT_READ_TIMEOUT"),
        ({"WIDGET_CALLBACK_DISPOSITIONS": "Ring back,Ring back"}, "WIDGET_CALLBACK_DISPOSITIONS"),
        ({"WIDGET_CALLBACK_DISPOSITIONS": "x" * 101}, "WIDGET_CALLBACK_DISPOSITIONS"),
        ({"WIDGET_CLOUDAGENT_TIMEZONE": "IST"}, "WIDGET_CLOUDAGENT_TIMEZONE"),
        ({"WIDGET_CLOUDAGENT_TIMEZONE": "Asia/Nowhere"}, "WIDGET_CLOUDAGENT_TIMEZONE"),
        ({"WIDGET_CLOUDAGENT_TIMEZONE": "../etc/passwd"}, "WIDGET_CLOUDAGENT_TIMEZONE"),
    ],
)
def test_a_bad_value_stops_start_up_naming_the_variable(change, variable):
    with pytest.raises(ConfigError) as error:
        load_settings(LIVE | change)
    message = str(error.value)
    assert message.startswith(variable + ":")
    assert "\n" not in message


@pytest.mark.parametrize(
    "key", ["key-0123\r\nX-Injected: yes", "key\x00-0123456789", "clé-0123456789", "k\x7fey0123"]
)
def test_an_api_key_no_header_can_carry_stops_start_up_without_showing_it(key):
    # requests would refuse it on every call, quoting it in an error the logs would keep.
    with pytest.raises(ConfigError) as error:
        load_settings(LIVE | {"WIDGET_CLOUDAGENT_API_KEY": key})
    message = str(error.value)
    assert message.startswith("WIDGET_CLOUDAGENT_API_KEY: holds a character")
    assert "0123" not in message and "\n" not in message


def test_signing_off_must_be_said_explicitly():
    assert load_settings(LIVE).launch_signing
    off = LIVE | {"WIDGET_LAUNCH_SIGNING": "off", "WIDGET_ALLOW_INSECURE": "1"}
    assert not load_settings(off).launch_signing


def test_a_missing_user_name_on_a_production_host_is_an_error_not_demo_mode():
    with pytest.raises(ConfigError, match=r"^WIDGET_CLOUDAGENT_USERNAME: required, since"):
        load_settings({k: v for k, v in LIVE.items() if k != "WIDGET_CLOUDAGENT_USERNAME"})


def test_origins_are_written_as_browsers_write_them():
    settings = load_settings(
        LIVE
        | {
            "WIDGET_FRAME_ANCESTORS": "https://CRM.Example.com:443 http://crm.test:80/ 'self'",
            "WIDGET_ALLOW_INSECURE": "1",  # http:// beyond loopback
        }
    )
    assert settings.frame_ancestors == ("https://crm.example.com", "http://crm.test", "'self'")


def test_no_secret_shows_in_the_settings_repr_or_a_redacted_url():
    from webapp.config import redact_url

    text = repr(load_settings(LIVE))
    for name in ("WIDGET_SECRET_KEY", "WIDGET_LAUNCH_SECRET", "WIDGET_CLOUDAGENT_API_KEY"):
        assert LIVE[name] not in text
    assert "S3cret" not in redact_url("redis://:S3cret@cache:6379/0")
    assert "S3cret" not in redact_url("unix:///run/redis.sock?db=0&password=S3cret")
    assert "S3cret" not in redact_url("postgresql+psycopg://u@db/w?password=S3cret")


# -- CloudAgent's events (issue 20) ---------------------------------------------------------------

EVENTS_TOKEN = "e" * 16 + "-_.~" + "E9" * 8


def test_the_events_settings_are_off_by_default_outside_demo_mode():
    settings = load_settings(LIVE)
    assert settings.events_token == ""  # no receivers, nothing to subscribe
    assert settings.events_api == "https://subscription.ozonetel.com"
    assert settings.wrapup_seconds is None  # no wrap-up clock


def test_the_events_settings_are_read():
    settings = load_settings(
        LIVE
        | {
            "WIDGET_EVENTS_TOKEN": EVENTS_TOKEN,
            "WIDGET_CLOUDAGENT_EVENTS_API": "https://subscription.ccaas.ozonetel.com/",
            "WIDGET_WRAPUP_SECONDS": "120",
        }
    )
    assert settings.events_token == EVENTS_TOKEN
    assert settings.events_api == "https://subscription.ccaas.ozonetel.com"
    assert settings.wrapup_seconds == 120
    assert load_settings(LIVE | {"WIDGET_WRAPUP_SECONDS": "0"}).wrapup_seconds == 0
    assert EVENTS_TOKEN not in repr(settings)


def test_demo_mode_subscribes_with_the_simulator_and_a_token_of_its_own(tmp_path):
    first = load_settings({}, instance_path=str(tmp_path))
    second = load_settings({}, instance_path=str(tmp_path))
    assert len(first.events_token) >= 32 and first.events_token != second.events_token
    assert first.events_api == first.cloudagent_url  # the simulator, wherever it was started


def test_an_events_api_over_http_needs_allow_insecure():
    url = {"WIDGET_CLOUDAGENT_EVENTS_API": "http://127.0.0.1:8001"}
    with pytest.raises(ConfigError, match=r"^WIDGET_CLOUDAGENT_EVENTS_API: http://"):
        load_settings(LIVE | url)
    assert (
        load_settings(LIVE | url | {"WIDGET_ALLOW_INSECURE": "1"}).events_api
        == url["WIDGET_CLOUDAGENT_EVENTS_API"]
    )


@pytest.mark.parametrize(
    "change, variable",
    [
        ({"WIDGET_EVENTS_TOKEN": "x" * 31}, "WIDGET_EVENTS_TOKEN"),
        ({"WIDGET_EVENTS_TOKEN": "x" * 31 + "/"}, "WIDGET_EVENTS_TOKEN"),
        ({"WIDGET_EVENTS_TOKEN": "x" * 31 + "?"}, "WIDGET_EVENTS_TOKEN"),
        ({"WIDGET_EVENTS_TOKEN": "x" * 31 + " "}, "WIDGET_EVENTS_TOKEN"),
        ({"WIDGET_EVENTS_TOKEN": "x" * 31 + "é"}, "WIDGET_EVENTS_TOKEN"),
        (
            {"WIDGET_CLOUDAGENT_EVENTS_API": "subscription.ozonetel.com"},
            "WIDGET_CLOUDAGENT_EVENTS_API",
        ),
        ({"WIDGET_CLOUDAGENT_EVENTS_API": "https://h/?x=1"}, "WIDGET_CLOUDAGENT_EVENTS_API"),
        ({"WIDGET_WRAPUP_SECONDS": "3601"}, "WIDGET_WRAPUP_SECONDS"),
        ({"WIDGET_WRAPUP_SECONDS": "-1"}, "WIDGET_WRAPUP_SECONDS"),
        ({"WIDGET_WRAPUP_SECONDS": "1.5"}, "WIDGET_WRAPUP_SECONDS"),
        ({"WIDGET_WRAPUP_SECONDS": "two minutes"}, "WIDGET_WRAPUP_SECONDS"),
    ],
)
def test_a_bad_events_setting_stops_start_up_naming_the_variable(change, variable):
    with pytest.raises(ConfigError) as error:
        load_settings(LIVE | change)
    assert str(error.value).startswith(variable + ":") and "\n" not in str(error.value)


def test_an_events_token_without_a_user_name_is_an_error_not_demo_mode():
    with pytest.raises(ConfigError, match=r"^WIDGET_CLOUDAGENT_USERNAME: required, since"):
        load_settings({"WIDGET_EVENTS_TOKEN": EVENTS_TOKEN})
