"""The save's answer from its shell (views._outcome, webapp/panel/shells.py) is byte for byte
the fragment the template renders: whatever the outcome, its texts (CloudAgent's included),
the call, what CloudAgent holds, and the language."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webapp import i18n
from webapp.panel import views
from webapp.panel.launch import Launch
from webapp.panel.recorded import Recorded
from webapp.panel.shells import MARK

KINDS = ["queued", "saved", "already_disposed", "rejected", "unavailable", "invalid"]
TEXT = st.text(max_size=40) | st.sampled_from(["", "<b>&\"'", f"a{MARK}ucid{MARK}b"])
OPTIONAL = st.one_of(st.none(), TEXT)
IDENTIFIER = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@+-]{0,20}", fullmatch=True)


class FullRender:
    """Every fragment rendered whole, as before the shells."""

    def page(self, key, render, values):
        return render(values)


def both(app, language, kind, message, call, **extra):
    """(from the shell, rendered whole) for one answer, each in a request context."""
    out = []
    for shells in (app.extensions["outcome_shells"], FullRender()):
        with app.test_request_context("/disposition/save", method="POST"):
            kept = app.extensions["outcome_shells"]
            app.extensions["outcome_shells"] = shells
            try:
                i18n.use(language)
                body, status = views._outcome(kind, message, call=call, **dict(extra))
            finally:
                app.extensions["outcome_shells"] = kept
            out.append((body, status))
    return out


@pytest.fixture
def outcome_app(make_app):
    return make_app()


# One app for every example: its shells are kept from one example to the next, as a worker's.
@settings(
    max_examples=150,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(data=st.data())
def test_an_outcome_from_its_shell_is_the_fragment_the_template_renders(outcome_app, data):
    extra = {}
    for name, strategy in (
        ("disposition", OPTIONAL),
        ("callback_time", OPTIONAL),
        ("reason", st.sampled_from([None, "sent", "saved_earlier", "http_5xx"])),
        ("unknown", st.booleans()),
        ("finished", st.booleans()),
        ("refused", st.sampled_from([None, "panel_invalid", "panel_expired"])),
        ("clear_errors", st.just(True)),
        (
            "recorded",
            st.builds(
                Recorded,
                OPTIONAL,
                st.sampled_from([None, "saved", "repeat", "earlier_save"]),
                st.none(),
            ),
        ),
        (
            "summary",
            st.fixed_dictionaries({"disposition": TEXT, "callback": TEXT, "pause": TEXT}),
        ),
    ):
        if data.draw(st.booleans()):
            extra[name] = data.draw(strategy)
    call = None
    if data.draw(st.booleans()):
        call = Launch(ucid=data.draw(IDENTIFIER), agent_id="agent1", did="914071327663")
    language = data.draw(st.sampled_from(["en", "hi"]))
    kind = data.draw(st.sampled_from(KINDS))
    shelled, whole = both(outcome_app, language, kind, data.draw(TEXT), call, **extra)
    assert shelled == whole


def test_field_errors_are_rendered_whole_and_as_before(outcome_app):
    errors = {"disposition": "Choose a disposition.", "comments": "<too long>"}
    shelled, whole = both(outcome_app, "en", "invalid", "Check the form.", None, errors=errors)
    assert shelled == whole
    assert 'id="comments-error"' in shelled[0] and "&lt;too long&gt;" in shelled[0]


def test_a_save_makes_one_shell_per_shape_not_per_call(outcome_app):
    shells = outcome_app.extensions["outcome_shells"]
    for n in range(20):
        call = Launch(ucid=f"ucid{n}", agent_id="agent1", did="914071327663")
        both(outcome_app, "en", "queued", f"Queued {n}.", call, disposition=f"D{n}", unknown=False)
    assert len(shells._shells) == 1
