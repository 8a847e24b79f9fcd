"""The panel's look from the launch link: the theme, and an accent kept readable."""

import re

import pytest

from tests.helpers import CRM_ORIGIN
from webapp.panel.theme import (
    DARK_BG,
    LIGHT_BG,
    accent_of,
    contrast,
    readable_on,
    theme_of,
)


def test_contrast_is_wcags():
    assert round(contrast("#ffffff", "#000000"), 1) == 21.0
    assert contrast("#1a5fd0", "#ffffff") == pytest.approx(contrast("#ffffff", "#1a5fd0"))
    assert round(contrast("#767676", "#ffffff"), 2) == 4.54  # the well-known AA grey


@pytest.mark.parametrize("value", ["light", "dark", "auto"])
def test_a_known_theme_is_taken(value):
    assert theme_of(value) == value


@pytest.mark.parametrize("value", [None, "", "Dark", "night", "dark "])
def test_anything_else_is_auto(value):
    assert theme_of(value) == "auto"


@pytest.mark.parametrize(
    "colour",
    ["#1a5fd0", "#ffd400", "#ffffff", "#000000", "#808080", "#e91e63", "#00ff00", "#0a0a0a"],
)
def test_any_accent_is_made_readable_in_both_themes(colour):
    accent = accent_of(colour)
    assert contrast(accent.ink, accent.fill) >= 4.5  # the Save button's text
    assert contrast(accent.text_light, LIGHT_BG) >= 4.5  # the accent as text, light theme
    assert contrast(accent.text_dark, DARK_BG) >= 4.5  # ... and dark


def test_a_readable_accent_is_kept_as_it_is():
    accent = accent_of("#1A5FD0")
    assert (accent.fill, accent.ink, accent.text_light) == ("#1a5fd0", "#ffffff", "#1a5fd0")
    assert accent_of("#ffd400").ink == "#111418"  # a light accent gets dark text
    assert readable_on("#1a5fd0", LIGHT_BG) == "#1a5fd0"


@pytest.mark.parametrize("value", [None, "", "red", "#fff", "#12345g", "1a5fd0", "#1a5fd0;x"])
def test_an_accent_that_is_not_rrggbb_is_none(value):
    assert accent_of(value) is None


def test_the_accent_css_and_its_hash():
    accent = accent_of("#1a5fd0")
    assert accent.css.startswith(":root{--accent:#1a5fd0;--accent-ink:#ffffff;")
    assert re.fullmatch(r"'sha256-[A-Za-z0-9+/]{43}='", accent.csp_source)
    assert "<" not in accent.css and '"' not in accent.css


# -- the panel --------------------------------------------------------------------------------


def test_the_theme_in_the_link_is_the_pages(panels, call):
    assert '<html lang="en" data-theme="dark">' in panels.open(call.ucid, theme="dark").html
    assert '<html lang="en" data-theme="auto">' in panels.open(call.ucid).html


def test_a_theme_or_accent_the_panel_does_not_know_is_logged_and_ignored(panels, call, caplog):
    panel = panels.open(call.ucid, theme="night", accent="tomato")
    assert panel.response.status_code == 200
    assert '<html lang="en" data-theme="auto">' in panel.html
    assert "<style>:root{--accent:" not in panel.html
    assert "theme or accent not understood" in caplog.text
    assert "night" not in caplog.text and "tomato" not in caplog.text  # nothing echoed


def test_an_accent_is_a_style_the_policy_allows_by_its_hash_and_nothing_else(panels, call, app):
    panel = panels.open(call.ucid, accent="#ffd400")
    accent = accent_of("#ffd400")
    assert f"<style>{accent.css}</style>" in panel.html
    policy = panel.response.headers["Content-Security-Policy"]
    styles = re.search(r"style-src ([^;]*)", policy).group(1).split()
    assert styles[0] == "'self'" and accent.csp_source in styles and len(styles) == 3
    assert f"frame-ancestors {CRM_ORIGIN}" in policy and "script-src 'self'" in policy
    plain = panels.open(call.ucid).response.headers["Content-Security-Policy"]
    assert accent.csp_source not in plain


def test_the_save_button_waits_for_the_panels_script(panels, call):
    html = panels.open(call.ucid).html
    assert re.search(r'<button type="submit" id="save"[^>]* disabled data-enable-when-ready>', html)
