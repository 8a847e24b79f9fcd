"""WIDGET_REDIS_URL, WIDGET_DATABASE_URL and WIDGET_INSTANCE_NAME: read, checked, and never
shown with their passwords."""

import re
import socket

import pytest

from tests.helpers import LIVE, ROOT
from webapp.config import ConfigError, load_settings, redact_url


def test_unset_means_one_host():
    settings = load_settings(LIVE)
    assert (settings.redis_url, settings.database_url) == ("", "")
    assert settings.instance_name == socket.gethostname()


def test_urls_are_read_and_postgresql_means_psycopg():
    settings = load_settings(
        LIVE
        | {
            "WIDGET_REDIS_URL": "rediss://:s3cret-redis@redis.internal:6380/2",
            "WIDGET_DATABASE_URL": "postgresql://widget:s3cret-pg@db.internal/widget",
            "WIDGET_INSTANCE_NAME": "widget-a",
        }
    )
    assert settings.redis_url == "rediss://:s3cret-redis@redis.internal:6380/2"
    assert settings.database_url == "postgresql+psycopg://widget:s3cret-pg@db.internal/widget"
    assert settings.instance_name == "widget-a"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    "change, variable",
    [
        ({"WIDGET_REDIS_URL": "http://:s3cret@redis.internal"}, "WIDGET_REDIS_URL"),
        ({"WIDGET_REDIS_URL": "redis.internal:6379"}, "WIDGET_REDIS_URL"),
        ({"WIDGET_REDIS_URL": "redis://:s3cret@host:port"}, "WIDGET_REDIS_URL"),
        ({"WIDGET_DATABASE_URL": "mysql://u:s3cret@db/widget"}, "WIDGET_DATABASE_URL"),
        ({"WIDGET_DATABASE_URL": "not a url s3cret"}, "WIDGET_DATABASE_URL"),
        ({"WIDGET_INSTANCE_NAME": "x" * 65}, "WIDGET_INSTANCE_NAME"),
    ],
)
def test_a_bad_value_stops_start_up_without_showing_a_password(change, variable):
    with pytest.raises(ConfigError) as error:
        load_settings(LIVE | change)
    message = str(error.value)
    assert message.startswith(variable + ":") and "\n" not in message
    assert "s3cret" not in message


def test_redact_url():
    assert redact_url("redis://:pw@h:6379/0") == "redis://:***@h:6379/0"
    assert redact_url("redis://user:pw@h/0") == "redis://user:***@h/0"
    assert redact_url("redis://h:6379/0") == "redis://h:6379/0"


def test_every_variable_is_in_the_readme_table_and_the_shared_ones_in_the_deployment_guide():
    root = ROOT
    read = set(re.findall(r'"(WIDGET_[A-Z_]+)"', (root / "webapp" / "config.py").read_text()))
    readme = (root / "README.md").read_text()
    table = {v for v in read if re.search(rf"^\| [^\n]*`{v}`", readme, re.MULTILINE)}
    assert read - table == set(), "variables missing from the README's configuration table"
    guide = (root / "docs" / "deployment.md").read_text()
    for variable in ("WIDGET_REDIS_URL", "WIDGET_DATABASE_URL", "WIDGET_INSTANCE_NAME"):
        assert f"| `{variable}` |" in guide
