"""The panel in the agent's language: chosen by the signed launch link, else the browser, else
the configured default; every text translated, while logs, audit rows and outcome keys stay
English."""

import html
import json
import logging
import re
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import flask_babel
import pytest
from babel.dates import format_datetime
from babel.messages.pofile import read_po

from tests.helpers import DID, ROOT, SUPPORT, launch_path, outcome_of
from webapp import create_app, i18n
from webapp.config import ConfigError
from webapp.panel.callbacks import CallbackRule
from webapp.panel.texts import script_messages

IST = ZoneInfo("Asia/Kolkata")
with (ROOT / "translations" / "hi" / "LC_MESSAGES" / "messages.po").open("rb") as source:
    # English text -> Hindi; a count's two English forms each to its Hindi form.
    HINDI = {}
    for m in read_po(source):
        if m.id:
            HINDI |= dict(zip(m.id, m.string)) if isinstance(m.id, tuple) else {m.id: m.string}


def visible_text(page: str) -> str:
    """What a person reads or hears: text, titles, labels and placeholders, not the markup."""
    page = re.sub(r"<script[^>]*>.*?</script>|<style>.*?</style>", " ", page, flags=re.S)
    # The account's disposition names are CloudAgent's data, in whatever language it has them.
    page = re.sub(r'<option value="[^"]+"[^>]*>[^<]*</option>', " ", page)
    attributes = re.findall(r'(?:title|placeholder|aria-label|label)="([^"]*)"', page)
    text = re.sub(r"<[^>]+>", " ", page)
    return html.unescape(" ".join([text, *attributes]))


def english_left(page: str) -> list[str]:
    """English texts of the catalogue that a Hindi page still shows."""
    shown = visible_text(page)
    return [
        english
        for english, hindi in HINDI.items()
        if english != hindi
        and "%(" not in english
        and re.search(rf"(?<!\w){re.escape(english)}(?!\w)", shown)
    ]


def language_of(page: str) -> str:
    return re.search(r'<html lang="([^"]+)"', page).group(1)


@pytest.fixture
def hindi(panels, call):
    return panels.open(call.ucid, lang="hi")


def test_a_link_with_lang_hi_opens_the_panel_in_hindi(hindi, call):
    assert language_of(hindi.html) == "hi"
    assert f"<title>कॉल {call.ucid} का डिस्पोज़िशन</title>" in hindi.html
    assert '<label for="disposition">डिस्पोज़िशन</label>' in hindi.html
    assert ">डिस्पोज़िशन सेव करें</button>" in hindi.html
    assert 'id="callback_time-label">कॉलबैक का समय (IST)</span>' in hindi.html
    # The callback's days the Hindi way (today's says so), its time box's label and hint too.
    assert re.search(r'<option value="[0-9-]{10}" data-when="[0-9]+ [^"]+, \{time\} IST">'
                     r"[^<]+ \(आज\)</option>", hindi.html)  # fmt: skip
    assert '<label for="callback_clock">समय (24 घंटे)</label>' in hindi.html
    assert english_left(hindi.html) == []
    # The account's own names stay as CloudAgent has them.
    assert '<option value="Interested">Interested</option>' in hindi.html


def test_the_script_gets_its_texts_in_the_panel_s_language(hindi, panels, call):
    """panel.js writes its own texts in English; a Hindi page carries their translations,
    every one, with the same placeholders, and an English page nothing at all."""
    texts = json.loads(html.unescape(re.search(r"data-texts='([^']*)'", hindi.html).group(1)))
    marked = script_messages(ROOT / "static" / "panel.js")
    assert len(marked) > 10 and set(texts) == {m[0] if isinstance(m, tuple) else m for m in marked}
    assert texts["Result unknown"] == "नतीजा पता नहीं"
    plural = ("%(num)s of %(total)s matches", "%(num)s of %(total)s match")
    assert texts[plural[0]] == ["%(total)s में से %(num)s मिला", "%(total)s में से %(num)s मिले"]
    for english, hindi_text in texts.items():
        for form in hindi_text if isinstance(hindi_text, list) else [hindi_text]:
            assert set(re.findall(r"%\(\w+\)s", form)) == set(re.findall(r"%\(\w+\)s", english))
            assert re.search("[\u0900-\u097f]", form), form
    assert "data-texts" not in panels.open(call.ucid).html


@pytest.mark.parametrize(
    "header, expected",
    [
        ("hi-IN,hi;q=0.9,en;q=0.8", "hi"),
        ("hi", "hi"),
        ("en-GB,en;q=0.9", "en"),
        ("fr-FR,fr;q=0.9", "en"),  # not a language the panel has: the default
        ("", "en"),
    ],
)
def test_without_lang_the_browser_chooses(panels, call, header, expected):
    page = panels.open(call.ucid)
    response = page.web.get(launch_path(call.ucid), headers={"Accept-Language": header})
    assert language_of(response.get_data(as_text=True)) == expected


def test_the_link_s_lang_wins_over_the_browser(web, call):
    page = web.get(launch_path(call.ucid, lang="en"), headers={"Accept-Language": "hi"})
    assert language_of(page.get_data(as_text=True)) == "en"


def test_a_language_the_panel_does_not_have_falls_back_and_is_logged(web, call, caplog):
    with caplog.at_level(logging.WARNING, logger="webapp.panel"):
        page = web.get(launch_path(call.ucid, lang="ta"), headers={"Accept-Language": "hi"})
    assert page.status_code == 200
    assert language_of(page.get_data(as_text=True)) == "hi"
    assert "language 'ta' not available, using hi" in caplog.text


def test_the_configured_default_applies_when_nothing_else_says(make_app, panels, call):
    web = make_app(WIDGET_DEFAULT_LANGUAGE="hi").test_client()
    page = panels.on(web).open(call.ucid)
    assert language_of(page.html) == "hi"
    english = web.get(launch_path(call.ucid), headers={"Accept-Language": "en"})
    assert language_of(english.get_data(as_text=True)) == "en"


@pytest.mark.parametrize("value", ["ta", "Hindi", "h1"])
def test_a_default_language_without_a_catalogue_refuses_to_start(make_app, value):
    with pytest.raises(ConfigError, match="WIDGET_DEFAULT_LANGUAGE"):
        make_app(WIDGET_DEFAULT_LANGUAGE=value)


# -- answers to a Hindi panel ------------------------------------------------------------------


def test_a_save_is_answered_in_the_panel_s_language_whatever_the_browser_says(hindi, call):
    form = {
        "context": hindi.field("context"),
        "csrf_token": hindi.field("csrf_token"),
        "disposition": "Interested",
    }
    # The context says Hindi: a browser asking for English gets the panel's language.
    response = hindi.web.post(
        "/disposition/save", data=form, headers={"HX-Request": "true", "Accept-Language": "en"}
    )
    page = response.get_data(as_text=True)
    assert outcome_of(response) == "queued"  # the keys the host page reads stay English
    assert "<strong>लंबित।</strong> कॉल ख़त्म होने पर यह लागू होगा।" in page


def test_field_errors_and_refusals_are_in_hindi(hindi, make_app):
    response = hindi.save(disposition="", pause="y", comments="x" * 501)
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "डिस्पोज़िशन चुनें।" in page
    assert "टिप्पणियाँ ज़्यादा से ज़्यादा 500 अक्षरों की हो सकती हैं।" in page
    assert "पॉज़ का कारण चुनें, या “इस कॉल के बाद पॉज़ करें” से टिक हटाएँ।" in page
    assert english_left(page) == []
    forged = hindi.save(csrf_token="forged").get_data(as_text=True)
    assert "पैनल की सुरक्षा जाँच विफल रही।" in forged


def test_a_callback_time_is_written_the_hindi_way(hindi):
    at = (datetime.now(IST) + timedelta(days=2)).replace(hour=10, minute=30, second=0)
    response = hindi.save(
        disposition="Call back later", callback_time=at.strftime("%Y-%m-%dT%H:%M")
    )
    page = response.get_data(as_text=True)
    written = format_datetime(at, "d MMM, HH:mm", tzinfo=IST, locale="hi")
    assert f"कॉलबैक: {written} IST।" in page
    assert written.split()[1] != at.strftime("%b,")  # the month in Hindi, not English


def test_the_rate_limit_is_told_in_hindi(make_app, panels, call):
    web = make_app(WIDGET_SAVES_PER_MINUTE="1").test_client()
    panel = panels.on(web).open(call.ucid, lang="hi")
    assert panel.save().status_code == 200
    refused = panel.save()
    assert refused.status_code == 429
    assert re.search(
        r"कम समय में बहुत ज़्यादा सेव। .* \d+ सेकंड बाद फिर से सेव करें।", refused.get_data(as_text=True)
    )


def test_an_outcome_from_cloudagent_is_told_in_hindi(panels, simulator):
    other = simulator.start_call("agent2", DID)
    panel = panels.open(other.ucid, agent="agent1", lang="hi")  # agent1 is not on it
    page = panel.save().get_data(as_text=True)
    assert "CloudAgent के अनुसार आप इस कॉल पर नहीं हैं" in page
    assert "not on this call" not in page  # CloudAgent's own words are never shown raw


def test_logs_and_audit_rows_stay_english(hindi, app, capsys):
    hindi.save(disposition="")
    response = hindi.save(disposition="Interested")
    assert outcome_of(response) == "queued"
    lines = [
        json.loads(line) for line in capsys.readouterr().err.splitlines() if line.startswith("{")
    ]
    saves = [line for line in lines if line.get("path") == "/disposition/save"]
    assert [(s["outcome"], s["reason"]) for s in saves] == [
        ("invalid", "form"),
        ("queued", "queued"),
    ]
    assert not any(
        re.search("[\u0900-\u097f]", json.dumps(line, ensure_ascii=False)) for line in lines
    )
    (row,) = app.extensions["audit"].rows()
    assert (row["outcome"], row["reason"]) == ("queued", "queued")


def test_the_link_error_page_follows_the_browser(web):
    page = web.get("/disposition?ucid=1", headers={"Accept-Language": "hi"})
    assert page.status_code == 403
    text = page.get_data(as_text=True)
    assert language_of(text) == "hi" and "यह लिंक मान्य नहीं है" in text
    assert english_left(text) == []
    missing = web.get("/nothing-here", headers={"Accept-Language": "hi"}).get_data(as_text=True)
    assert "<h1>नहीं मिला</h1>" in missing and "इस पते पर कुछ नहीं है।" in missing


def test_a_refused_link_still_speaks_the_language_it_asked_for(web, call):
    """A Hindi agent's broken link: the page is in Hindi, and no other value of lang gets in."""
    path = launch_path(call.ucid, lang="hi").replace("ucid=", "ucid=999")
    page = web.get(path, headers={"Accept-Language": "en"})
    assert page.status_code == 403 and language_of(page.get_data(as_text=True)) == "hi"
    odd = web.get("/disposition?ucid=1&lang=%22%3E%3Cb%3E", headers={"Accept-Language": "en"})
    assert odd.status_code == 403
    text = odd.get_data(as_text=True)
    assert language_of(text) == "en" and "<b>" not in text


@pytest.mark.parametrize("tag", ["hi-IN", "HI", "hi_IN"])
def test_a_crm_may_write_the_language_its_own_way(panels, call, tag, caplog):
    page = panels.open(call.ucid, lang=tag).html
    assert language_of(page) == "hi"
    assert "not available" not in caplog.text


def test_the_demo_crm_page_stays_english_for_a_hindi_browser(tmp_path):
    demo = create_app({"WIDGET_DATA_DIR": str(tmp_path)}).test_client()  # demo mode
    page = demo.get("/demo", base_url="http://localhost:8000", headers={"Accept-Language": "hi"})
    assert page.status_code == 200 and language_of(page.get_data(as_text=True)) == "en"


def test_a_callback_time_is_written_the_way_of_each_language():
    """CLDR's order and month names; 24-hour, as the field."""
    at = datetime(2026, 11, 29, 10, 30, tzinfo=IST)
    rule = CallbackRule(["Call back later"])
    assert rule.spoken(at, "en") == "29 Nov, 10:30 IST"  # the documented English
    assert rule.spoken(at, "hi") == "29 नव॰, 10:30 IST"
    assert rule.spoken(at, "ta") == "நவ. 29, 10:30 IST"  # the month first, in Tamil


@pytest.mark.parametrize("language", ["en", "hi"])
def test_texts_translated_when_compiled_read_as_if_looked_up(
    panels, simulator, monkeypatch, language
):
    """The panel's templates are compiled once per language with their texts in them
    (i18n.TranslatedWhenCompiled): each page reads exactly as Jinja's i18n, looking each text
    up as it renders, would write it."""

    def pages():
        simulator_call = simulator.start_call("agent1", SUPPORT)
        panel = panels.open(simulator_call.ucid, did=SUPPORT, lang=language)
        saved = panel.save(disposition="Issue resolved", comments="<b>&")
        refused = panel.web.get("/disposition?ucid=1", headers={"Accept-Language": language})
        forms = (panel.html, saved.get_data(as_text=True), refused.get_data(as_text=True))
        return [re.sub(r'(value|data-ucid)="[^"]*"|\d{16}', "", page) for page in forms]

    compiled = pages()  # the second panel has its Recent group: the hint's Alt keys too
    compiled = pages()
    monkeypatch.setattr(i18n, "template", lambda name, **_: name)  # by name: looked up
    assert pages() == compiled
    assert "Alt</kbd>" in compiled[0] and "<kbd>Esc</kbd>" in compiled[0]


def test_a_browser_s_accept_language_is_parsed_once_not_per_panel(panels, call, monkeypatch):
    parsed = []
    real = i18n.parse_accept_header
    monkeypatch.setattr(
        i18n, "parse_accept_header", lambda *args: parsed.append(args[0]) or real(*args)
    )
    i18n._preferred.cache_clear()
    web = panels.open(call.ucid).web
    for header in ("hi-IN,hi;q=0.9,en;q=0.8", "hi-IN,hi;q=0.9,en;q=0.8", "en-GB,en;q=0.9"):
        page = web.get(launch_path(call.ucid), headers={"Accept-Language": header})
        assert language_of(page.get_data(as_text=True)) == header[:2]
    assert parsed == ["hi-IN,hi;q=0.9,en;q=0.8", "en-GB,en;q=0.9"]


@pytest.mark.parametrize("reloads", [False, True])
def test_a_compiled_template_is_looked_up_once_unless_templates_reload(make_app, reloads):
    app = make_app()
    for environment in app.extensions["templates"].values():
        environment.auto_reload = reloads
    asked = []
    for language, environment in app.extensions["templates"].items():
        real = environment.get_template
        environment.get_template = lambda name, real=real: asked.append(name) or real(name)
        with app.test_request_context("/disposition"):
            i18n.use(language)
            first, again = i18n.template("panel.html"), i18n.template("panel.html")
        assert first is again is real("panel.html")
        assert first.environment is environment  # this language's compiled copy
    assert len(asked) == len(app.extensions["templates"]) * (2 if reloads else 1)


@pytest.mark.parametrize("asked_first", [False, True])
def test_flask_babel_follows_the_language_the_request_switches_to(make_app, asked_first):
    """i18n.use tells Flask-Babel to forget the locale it found, when it found one."""
    app = make_app()
    with app.test_request_context("/disposition", headers={"Accept-Language": "en"}):
        if asked_first:
            assert str(flask_babel.get_locale()) == "en"
        i18n.use("hi")
        assert str(flask_babel.get_locale()) == "hi"
        english = next(e for e, h in HINDI.items() if e != h and "%(" not in e)
        assert flask_babel.gettext(english) == HINDI[english]
