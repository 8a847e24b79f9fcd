"""The panel from its shell (webapp/panel/shells.py) is byte for byte the panel the template
renders for that call: whatever the call's values, language, look, list and recent choices."""

from __future__ import annotations

import gzip
import json
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jinja2.utils import htmlsafe_json_dumps

from tests.helpers import DID
from webapp import i18n
from webapp.panel import views
from webapp.panel.launch import Launch
from webapp.panel.shells import MARK, Filled, Shells
from webapp.panel.theme import THEMES, accent_of
from webapp.simulator.state import SUPPORT_DID
from webapp.web import compression

IDENTIFIER = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,20}", fullmatch=True)
ACCENTS = st.one_of(st.none(), st.from_regex(r"#[0-9a-f]{6}", fullmatch=True))
STATE_TEXT = st.text(max_size=30)  # a disposition CloudAgent kept: any text at all


class FullRender:
    """What the panel was before the shells: every page rendered whole."""

    def fill(self, key, render, values):
        return Filled(render(values).encode(), None)


def render_both(app, call, language, look, call_state, events_url, template="panel.html"):
    """(from the shell, rendered whole) for one call, in one request context. The shell's
    page comes with its pieces for gzip: put together, they are the page's gzip."""
    token = f"ctx.{call.ucid}.{call.agent_id}"  # any text: only its escaping matters here
    pages = []
    for shells in (app.extensions["shells"], FullRender()):
        with app.test_request_context("/disposition"):
            app.extensions["shells"], kept = shells, app.extensions["shells"]
            try:
                i18n.use(language)
                pages.append(
                    views._render_form(
                        call,
                        token,
                        template,
                        call_state=call_state,
                        events_url=events_url,
                        **look,
                    )
                )
            finally:
                app.extensions["shells"] = kept
    from_shell, whole = pages
    assert whole.deflated is None
    body = from_shell.body
    if from_shell.deflated is not None:  # None only when a list holds the marker character
        packed = compression.gzip_deflated(from_shell.deflated, body)
        assert gzip.decompress(packed) == body and zlib.decompress(packed, 31) == body
    return body.decode(), whole.body.decode()


@pytest.fixture
def shell_app(make_app):
    return make_app(WIDGET_EVENTS_TOKEN="e" * 40)


# One app for every example: its shells are kept from one example to the next, as a worker's.
@settings(
    max_examples=60,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_a_panel_from_its_shell_is_the_panel_the_template_renders(shell_app, data):
    app = shell_app
    ucid, agent = data.draw(IDENTIFIER), data.draw(IDENTIFIER)
    language = data.draw(st.sampled_from(["en", "hi"]))
    theme = data.draw(st.sampled_from(THEMES))
    accent = accent_of(data.draw(ACCENTS))
    state = None
    if data.draw(st.booleans()):
        message = {"ucid": ucid, "ended": True, "confirmed": {"disposition": data.draw(STATE_TEXT)}}
        state = htmlsafe_json_dumps(message, dumps=json.dumps, ensure_ascii=False)
    events_url = data.draw(st.one_of(st.none(), st.just("/disposition/events?context=a%2Fb&c")))
    template = data.draw(st.sampled_from(["panel.html", "_form.html"]))
    # The sales line (a callback disposition), another, and the long list (a search box).
    did = data.draw(st.sampled_from([DID, "918069000000", SUPPORT_DID]))
    with app.app_context():
        names = app.extensions["dispositions"].get(agent, did, ucid).names
        recent = data.draw(st.lists(st.sampled_from(names), max_size=3, unique=True))
        app.extensions["recent"]._put((agent, did), tuple(recent))  # as if from the trail
    look = {"theme": theme, "accent": accent} if template == "panel.html" else {}
    with app.app_context():
        from_shell, whole = render_both(
            app, Launch(ucid, agent, did), language, look, state, events_url, template
        )
    assert from_shell == whole
    assert MARK not in from_shell
    assert (f'data-recent="{len(recent)}"' in from_shell) == bool(recent)
    assert f'data-ucid="{ucid}"' in from_shell


def test_one_shell_serves_every_call_of_a_line_and_a_new_list_gets_its_own(shell_app, simulator):
    shells = shell_app.extensions["shells"]
    with shell_app.app_context():
        for i in range(5):
            from_shell, whole = render_both(
                shell_app, Launch(f"u{i}", f"agent{i}", DID), "en", {"theme": "auto"}, None, None
            )
            assert from_shell == whole
        assert len(shells._shells) == 1
        render_both(shell_app, Launch("u9", "agent9", DID), "hi", {"theme": "auto"}, None, None)
        assert len(shells._shells) == 2  # another language, another shell


def test_a_list_holding_the_marker_character_is_rendered_whole_every_time():
    rendered = []

    def render(values):
        rendered.append(dict(values))
        return f"<p>{values['ucid']}</p><option>bad{MARK}name</option>"

    shells = Shells()
    assert shells.page("k", render, {"ucid": "1"}) == f"<p>1</p><option>bad{MARK}name</option>"
    assert shells.page("k", render, {"ucid": "2"}) == f"<p>2</p><option>bad{MARK}name</option>"
    assert [r["ucid"] for r in rendered] == [f"{MARK}ucid{MARK}", "1", "2"]


def test_values_are_escaped_as_the_template_escapes_them_and_markup_goes_in_as_is():
    shells = Shells()

    def render(values):
        return f'<a title="{values["a"]}">{values["b"]}</a>'

    shells.page("k", render, {"a": "x", "b": "y"})  # the shell, from markers
    page = shells.page("k", render, {"a": '"><script>', "b": htmlsafe_json_dumps("<i>")})
    assert page == '<a title="&#34;&gt;&lt;script&gt;">"\\u003ci\\u003e"</a>'


def test_the_shells_kept_are_bounded():
    shells = Shells(maxsize=4)
    for key in range(10):
        shells.page(key, lambda values: f"{values['v']}", {"v": "1"})
    assert len(shells._shells) <= 4


def test_a_list_from_cloudagent_holding_the_marker_is_rendered_whole(make_app, simulator):
    # A disposition name is CloudAgent's text: one spelt like a marker must stay its own text,
    # never become this call's CSRF token in the page.
    did = "918069000001"
    account = simulator.account("demo")
    account.dids.add(did)
    account.did_dispositions[did] = ["Interested", f"Busy{MARK}csrf_token{MARK}"]
    app = make_app()
    with app.app_context():
        from_shell, whole = render_both(
            app, Launch("u1", "agent1", did), "en", {"theme": "auto"}, None, None
        )
    assert from_shell == whole
    assert f"Busy{MARK}csrf_token{MARK}" in whole
    assert not app.extensions["shells"]._shells  # no shell kept for that list
