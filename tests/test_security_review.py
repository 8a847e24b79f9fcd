"""The findings of the security review, one test each (each failed before its fix; the
request id and the audit's copy of it held already, and are kept held here)."""

import copy
import csv
import html.parser
import io
import json
import os
import sqlite3
import stat

import pytest
import requests
from pytest_httpserver import HTTPServer
from sqlalchemy import event
from werkzeug import Response

from tests.helpers import DID, LIVE, SUPPORT, outcome_of
from webapp.audit import Attempt
from webapp.cloudagent import RESULT_UNKNOWN, CloudAgentClient, SqliteTokenStore
from webapp.cloudagent import cache as cache_module
from webapp.cloudagent.client import ANSWER_CHUNK, MAX_ANSWER_BYTES
from webapp.config import ConfigError, load_settings
from webapp.i18n import TranslatedWhenCompiled


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# -- files: the service's user only, from the first write on ---------------------------------


def test_the_data_folder_and_every_database_file_are_the_services_user_only(
    make_app, panels, simulator, tmp_path
):
    data = tmp_path / "new-data-folder"
    app = make_app(WIDGET_DATA_DIR=str(data))
    call = simulator.start_call("agent1", DID)
    assert outcome_of(panels.on(app.test_client()).open(call.ucid).save()) == "queued"
    names = sorted(p.name for p in data.iterdir())
    for name in ("tokens.sqlite3", "tokens.sqlite3-wal", "audit.sqlite3", "audit.sqlite3-wal"):
        assert name in names  # WAL files are there: they hold the latest writes
    assert mode(data) == 0o700
    for path in data.iterdir():
        assert mode(path) & 0o077 == 0, f"{path.name} is {oct(mode(path))}"


def test_files_an_older_release_left_open_are_closed_up(make_app, tmp_path):
    for name in ("tokens.sqlite3", "audit.sqlite3"):
        (tmp_path / name).touch(mode=0o644)
        os.chmod(tmp_path / name, 0o644)
    make_app()
    assert mode(tmp_path / "tokens.sqlite3") == mode(tmp_path / "audit.sqlite3") == 0o600


def test_a_wal_file_another_process_removes_meanwhile_is_no_error(tmp_path, monkeypatch):
    """The -wal file is there when the start-up check comes to it and gone a moment later
    (another process's last connection closed): the check goes on, the database private."""
    from webapp.audit import sqlite as audit_sqlite

    database = tmp_path / "audit.sqlite3"
    wal = tmp_path / "audit.sqlite3-wal"
    for file in (database, wal):
        file.touch(mode=0o644)
        os.chmod(file, 0o644)
    real_chmod = os.chmod

    def chmod_as_the_wal_goes(file, file_mode):
        if str(file) == str(wal):
            wal.unlink()  # the other process's SQLite, just before this chmod
        real_chmod(file, file_mode)

    monkeypatch.setattr(audit_sqlite.os, "chmod", chmod_as_the_wal_goes)
    audit_sqlite.private_database(database)
    assert mode(database) == 0o600
    assert not wal.exists()


# -- the CloudAgent client never follows a redirect -------------------------------------------


@pytest.fixture
def elsewhere():
    """Another server, where a redirect would lead: it must never hear from the client."""
    server = HTTPServer(port=0)
    server.start()
    server.expect_request("/steal").respond_with_data("{}")
    yield server
    server.clear()
    server.stop()


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
def test_a_redirect_is_a_fault_and_no_credential_goes_to_another_url(
    httpserver, elsewhere, tmp_path, status
):
    target = elsewhere.url_for("/steal")
    redirect = Response("", status, headers={"Location": target})
    httpserver.expect_request("/ca_apis/CAToken/generateToken").respond_with_response(redirect)
    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_response(redirect)
    minting = CloudAgentClient(
        base_url=httpserver.url_for("/"),
        username="acme",
        api_key="acme-key",
        token_store=SqliteTokenStore(tmp_path / "tokens.sqlite3"),
    )
    keyed = CloudAgentClient(
        base_url=httpserver.url_for("/"), username="acme", api_key="acme-key", auth="apikey"
    )
    args = dict(agent_id="a", did="d", ucid="u", disposition="X")
    assert minting.set_disposition(**args).kind == "unavailable"  # the mint was redirected
    outcome = keyed.set_disposition(**args)
    assert (outcome.kind, outcome.reason) == ("unavailable", "bad_response")  # result unknown
    assert keyed.fetch_dispositions("a", "d", "u").error.kind == "unavailable"
    assert elsewhere.log == []  # nothing, and no key or token, went to the other URL


# -- the audit trail cannot be turned against its readers --------------------------------------


FORMULAS = ['=HYPERLINK("http://x")', "+1+1", "-2", "@SUM(A1)", "\tTab", "\rReturn"]


def test_the_csv_export_neutralises_cells_a_spreadsheet_would_run(app):
    audit = app.extensions["audit"]
    for name in FORMULAS:
        audit.begin(Attempt("agent1", "u1", DID, name, pause=False, pause_reason=""))
    exported = app.test_cli_runner().invoke(args=["audit", "export", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    assert [row["disposition"] for row in rows] == ["'" + name for name in FORMULAS]
    jsonl = app.test_cli_runner().invoke(args=["audit", "export", "--format", "jsonl"])
    assert [json.loads(line)["disposition"] for line in jsonl.stdout.splitlines()] == FORMULAS


HIDDEN_FORMULAS = [
    " =1+1",
    '\u00a0=HYPERLINK("http://x")',
    "\uff1d1+1",
    "\uff0b1",
    "\uff0d2",
    "\uff20SUM(A1)",
    " \u00a0\u200b+1",
    "\u3000\uff1d1",
    "\nnew line",
]
HARMLESS = ["Sale closed", " Sale closed", "Call back - tomorrow", "e-mail sent", "100%"]


def test_the_csv_export_neutralises_formulas_behind_blanks_and_full_width_signs(app):
    audit = app.extensions["audit"]
    for name in HIDDEN_FORMULAS + HARMLESS:
        audit.begin(Attempt("agent1", "u1", DID, name, pause=False, pause_reason=""))
    exported = app.test_cli_runner().invoke(args=["audit", "export", "--format", "csv"])
    rows = list(csv.DictReader(io.StringIO(exported.stdout)))
    expected = ["'" + name for name in HIDDEN_FORMULAS] + HARMLESS  # the rest as it was
    assert [row["disposition"] for row in rows] == expected


@pytest.mark.parametrize(
    "hidden", ["\u200e", "\u200f", "\u061c", "\u200b", "\u200c", "\u200d", "\u2060", "\ufeff"]
)
def test_the_listing_escapes_direction_marks_and_zero_width_characters(app, hidden):
    name = f"Sale{hidden} closed"
    app.extensions["audit"].begin(Attempt("agent1", "u1", DID, name, pause=False, pause_reason=""))
    listed = app.test_cli_runner().invoke(args=["audit", "list"]).stdout
    assert hidden not in listed and f"Sale\\u{ord(hidden):04x} closed" in listed


def test_the_listing_shows_control_characters_escaped_so_no_line_can_be_forged(app):
    forged = "Sale closed\n2026-11-28T10:00:00.000+00:00  agent9 1 saved Fake\x1b[2J\u202e"
    app.extensions["audit"].begin(
        Attempt("agent1", "u1", DID, forged, pause=False, pause_reason="")
    )
    listed = app.test_cli_runner().invoke(args=["audit", "list"]).stdout
    (line,) = listed.splitlines()  # one row, one line
    assert "Sale closed\\u000a2026" in line and "\\u001b[2J" in line and "\\u202e" in line
    assert "\x1b" not in listed and "\u202e" not in listed


@pytest.mark.parametrize("name", ["Sale\nclosed", "Sale\rclosed", "Sale\tclosed", "X\x00"])
def test_a_free_text_disposition_refuses_control_characters(make_app, panels, simulator, name):
    simulator.add_fault("get", "http_500", count=-1)  # the list cannot load: free text
    app = make_app()
    call = simulator.start_call("agent1", DID)
    response = panels.on(app.test_client()).open(call.ucid).save(disposition=name)
    assert response.status_code == 422 and outcome_of(response) == "invalid"
    assert simulator.stats()["requests"]["Set"] == 0


@pytest.mark.parametrize("name", ["Sale\u200bclosed", "Sale closed\u200e", "\u2060Interested"])
@pytest.mark.parametrize(
    "lang, message",
    [("en", "contains an invisible character"), ("hi", "अदृश्य कैरेक्टर")],
)
def test_a_free_text_disposition_refuses_invisible_format_characters(
    make_app, panels, simulator, name, lang, message
):
    simulator.add_fault("get", "http_500", count=-1)  # the list cannot load: free text
    app = make_app()
    call = simulator.start_call("agent1", DID)
    response = panels.on(app.test_client()).open(call.ucid, lang=lang).save(disposition=name)
    assert response.status_code == 422 and outcome_of(response) == "invalid"
    assert message in response.get_data(as_text=True)
    assert simulator.stats()["requests"]["Set"] == 0


# -- bad requests cost CloudAgent nothing --------------------------------------------------------


def test_the_csrf_token_is_checked_before_the_list_is_fetched(panels, simulator, call, app):
    panel = panels.open(call.ucid)
    app.extensions["dispositions"].clear()  # a save would have to fetch the list again
    before = simulator.stats()["requests"]["get"]
    for path in ("/disposition/save", "/disposition/form"):
        response = panel.web.post(
            path,
            data={"context": panel.field("context"), "csrf_token": "0" * 64},
            headers={"HX-Request": "true"},
        )
        assert response.status_code == 403 and outcome_of(response) == "invalid"
    assert simulator.stats()["requests"]["get"] == before  # nothing asked of CloudAgent


def test_a_list_that_failed_is_not_asked_for_again_on_every_request(panels, simulator, monkeypatch):
    simulator.add_fault("get", "http_503", count=-1)
    for _ in range(5):
        panel = panels.open(simulator.start_call("agent1", DID).ucid)
        assert "could not be loaded" in panel.html
    assert simulator.stats()["requests"]["get"] == 1  # one failure, then its back-off
    simulator.clear_faults()
    monkeypatch.setattr(cache_module, "FAILED_BACKOFF", 0.0)  # the back-off has passed
    panel = panels.open(simulator.start_call("agent1", DID).ucid)
    assert '<option value="Interested">' in panel.html
    assert simulator.stats()["requests"]["get"] == 2


# The save limit, exact under concurrency: tests/server/test_save_limit.py (4 workers racing).
# Junk POSTs counted apart from saves, so the saves alert still sees an outage:
# tests/web/test_metrics.py. The audit trail's retention: tests/audit/test_retention.py and
# tests/shared/test_postgres_audit.py.


# -- the request id -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "given, kept",
    [
        ("lb-0123456789abcdef", True),
        ("short", False),
        ("x" * 65, False),
        ("has space 0123456789", False),
        ("<script>0123456789</script>", False),
    ],
)
def test_a_request_id_is_taken_only_when_well_formed_and_short_and_the_audit_keeps_it(
    make_app, panels, call, given, kept
):
    app = make_app(WIDGET_TRUSTED_PROXIES="127.0.0.1")  # the test client's address
    panel = panels.on(app.test_client()).open(call.ucid)
    response = panel.web.post(
        "/disposition/save",
        data={"context": panel.field("context"), "csrf_token": panel.field("csrf_token"),
              "disposition": "Interested", "comments": ""},
        headers={"HX-Request": "true", "X-Request-ID": given},
    )  # fmt: skip
    logged = response.headers["X-Request-ID"]
    assert (logged == given) is kept
    assert len(logged) <= 64 and logged.replace("-", "").replace(".", "").isalnum()
    (row,) = app.extensions["audit"].rows()
    assert row["request_id"] == logged


def save_with_request_id(panels, web, simulator, request_id, peer):
    """A save of a new call, from `peer`, naming itself `request_id`: the response."""
    panel = panels.on(web).open(simulator.start_call("agent1", DID).ucid)
    return panel.web.post(
        "/disposition/save",
        data={"context": panel.field("context"), "csrf_token": panel.field("csrf_token"),
              "disposition": "Interested", "comments": ""},
        headers={"HX-Request": "true", "X-Request-ID": request_id},
        environ_base={"REMOTE_ADDR": peer},
    )  # fmt: skip


def test_a_request_id_from_an_untrusted_peer_is_never_ours(make_app, panels, simulator, caplog):
    caplog.set_level("INFO")
    app = make_app(WIDGET_TRUSTED_PROXIES="10.0.0.0/8, 192.0.2.7")
    web = app.test_client()
    for peer in ("203.0.113.9", "203.0.113.9", "10.0.0.1"):  # the last one, a trusted proxy
        save_with_request_id(panels, web, simulator, "lb-0123456789abcdef", peer)
    rows = list(app.extensions["audit"].rows())
    mine, again, proxied = (row["request_id"] for row in rows)
    assert len({mine, again, "lb-0123456789abcdef"}) == 3  # each minted by the service
    assert proxied == "lb-0123456789abcdef"  # the trusted proxy's id is kept
    saves = [r.fields for r in caplog.records
             if r.name == "webapp.request" and r.fields["path"] == "/disposition/save"]  # fmt: skip
    assert [line.get("client_request_id") for line in saves] == [
        "lb-0123456789abcdef", "lb-0123456789abcdef", None
    ]  # fmt: skip


@pytest.mark.parametrize("value", ["10.0.0.300", "proxy.example.com", "10.0.0.0/33", "*"])
def test_trusted_proxies_must_be_addresses_or_networks(value):
    with pytest.raises(ConfigError, match="^WIDGET_TRUSTED_PROXIES: .*not an IP address"):
        load_settings(LIVE | {"WIDGET_TRUSTED_PROXIES": value})
    assert load_settings(LIVE).trusted_proxies == ()
    both = load_settings(LIVE | {"WIDGET_TRUSTED_PROXIES": "10.0.0.1 fd00::/8,192.0.2.0/24"})
    assert [str(n) for n in both.trusted_proxies] == ["10.0.0.1/32", "fd00::/8", "192.0.2.0/24"]


# -- what would expose the account refuses to start ----------------------------------------------


@pytest.mark.parametrize(
    "change, variable",
    [
        ({"WIDGET_LAUNCH_SIGNING": "off"}, "WIDGET_LAUNCH_SIGNING"),
        ({"WIDGET_CLOUDAGENT_URL": "http://ca.example.com"}, "WIDGET_CLOUDAGENT_URL"),
        ({"WIDGET_ALLOW_INSECURE": "yes"}, "WIDGET_ALLOW_INSECURE"),
    ],
)
def test_insecure_settings_refuse_to_start_unless_said_explicitly(change, variable):
    with pytest.raises(ConfigError, match=f"^{variable}: "):
        load_settings(LIVE | change)
    if variable != "WIDGET_ALLOW_INSECURE":
        assert load_settings(LIVE | change | {"WIDGET_ALLOW_INSECURE": "1"}).allow_insecure


def test_allowing_them_is_logged_and_demo_mode_needs_no_flag(make_app, caplog, tmp_path):
    make_app(WIDGET_LAUNCH_SIGNING="off")  # the tests' app allows insecure settings
    assert "WIDGET_ALLOW_INSECURE=1" in caplog.text
    demo = load_settings({"WIDGET_LAUNCH_SIGNING": "off"}, instance_path=str(tmp_path))
    assert demo.demo and not demo.launch_signing


@pytest.mark.parametrize(
    "origins",
    [
        "https://crm.example.com;script-src *",
        "https://crm.example.com; script-src 'unsafe-inline'",
        "https://crm.example.com,https://b.example.com",
        "'https://crm.example.com'",
        '"https://crm.example.com"',
        "https://crm.example.com\u00a0https://evil.example",
        "https://crm.example.com\nX-Injected: 1",
        "https://crm.example.com/path",
        "https://crm.example.com?q=1",
        "https://user@crm.example.com",
        "https://crm.example.com:99999",
        "https://crm.exämple.com",
        "javascript://crm.example.com",
        "'unsafe-inline'",
        "*",
    ],
)
def test_a_frame_ancestor_must_be_a_bare_origin(origins):
    with pytest.raises(ConfigError, match="^WIDGET_FRAME_ANCESTORS: ") as error:
        load_settings(LIVE | {"WIDGET_FRAME_ANCESTORS": origins, "WIDGET_ALLOW_INSECURE": "1"})
    assert "\n" not in str(error.value)  # one line naming the variable


def test_a_plain_http_crm_origin_needs_the_flag_outside_demo_mode(tmp_path):
    origins = {"WIDGET_FRAME_ANCESTORS": "https://crm.example.com http://crm.example.com"}
    with pytest.raises(ConfigError, match="^WIDGET_FRAME_ANCESTORS: 'http://crm.example.com'"):
        load_settings(LIVE | origins)
    allowed = load_settings(LIVE | origins | {"WIDGET_ALLOW_INSECURE": "1"})
    assert allowed.frame_ancestors == ("https://crm.example.com", "http://crm.example.com")
    demo = load_settings(origins, instance_path=str(tmp_path))
    assert demo.demo and "http://crm.example.com" in demo.frame_ancestors
    # A CRM on the agent's own machine: nobody on the network can get in between.
    loopback = "http://localhost:3000 http://127.0.0.1:8080 http://[::1]:3000 'self'"
    settings = load_settings(LIVE | {"WIDGET_FRAME_ANCESTORS": loopback})
    assert settings.frame_ancestors_header == loopback


def test_good_origins_are_kept_whatever_spaces_separate_them():
    value = " https://crm.example.com\thttps://*.crm.example.com   https://[2001:db8::1]:8443\n"
    settings = load_settings(LIVE | {"WIDGET_FRAME_ANCESTORS": value})
    assert settings.frame_ancestors_header == (
        "https://crm.example.com https://*.crm.example.com https://[2001:db8::1]:8443"
    )


def test_https_and_signed_links_need_no_flag():
    settings = load_settings(LIVE | {"WIDGET_CLOUDAGENT_URL": "https://ca.example.com"})
    assert settings.cloudagent_url == "https://ca.example.com" and not settings.allow_insecure


# -- /readyz costs the same however long the audit trail grows ---------------------------------


def test_readyz_reads_no_more_of_a_large_audit_trail_than_of_an_empty_one(app, web):
    audit = app.extensions["audit"]
    row = (1.0, 2.0, "req", "agent1", "u", DID, "Interested", False, "saved", "node")
    with sqlite3.connect(app.config["WIDGET"].data_dir / "audit.sqlite3") as db:
        db.executemany(
            "INSERT INTO saves (started_at, finished_at, request_id, agent, ucid, did, "
            "disposition, pause, outcome, instance) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [row] * 200_000,
        )
    audit_sql: list[str] = []
    event.listen(
        audit.engine, "before_cursor_execute", lambda *args: audit_sql.append(args[2].lower())
    )
    token_sql: list[str] = []
    app.extensions["cloudagent"].token_store._connect().set_trace_callback(token_sql.append)
    try:
        ready = web.get("/readyz")
    finally:
        app.extensions["cloudagent"].token_store._connect().set_trace_callback(None)
    assert ready.status_code == 200 and ready.json["status"] == "ready"
    assert set(ready.json["checks"]) == {"audit_log", "rate_limits", "token_store"}
    # Each probe of the trail is one bounded read: no count, no scan of the table.
    assert audit_sql and all("count(" not in sql and "limit" in sql for sql in audit_sql)
    assert token_sql and all("count(" not in sql.lower() for sql in token_sql)


# -- CloudAgent's answer is read only so far ------------------------------------------------------


class EndlessBody:
    """An answer that never ends, counting the bytes the client pulls from it."""

    def __init__(self) -> None:
        self.pulled = 0
        self.closed = False

    def read(self, amount: int | None = None, **_options: object) -> bytes:
        chunk = b'{"status": "Success", "details": ["' + b"A" * max(0, (amount or 65536) - 35)
        self.pulled += len(chunk)
        return chunk

    def close(self) -> None:
        self.closed = True


class EndlessCloudAgent(requests.adapters.BaseAdapter):
    """Answers every request 200 with an EndlessBody (a transport: no socket buffers between
    what is sent and what the client pulls)."""

    def __init__(self) -> None:
        super().__init__()
        self.bodies: list[EndlessBody] = []

    def send(self, request, **_options):
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/json"
        response.raw = EndlessBody()
        response.request, response.url = request, request.url
        self.bodies.append(response.raw)
        return response

    def close(self) -> None:
        pass


def test_an_endless_answer_is_read_no_further_than_the_cap_and_trusted_in_nothing(tmp_path):
    endless = EndlessCloudAgent()
    session = requests.Session()
    session.mount("https://ca.test", endless)
    options = dict(base_url="https://ca.test", username="acme", api_key="k", session=session)
    keyed = CloudAgentClient(auth="apikey", **options)
    minting = CloudAgentClient(token_store=SqliteTokenStore(tmp_path / "t.sqlite3"), **options)
    args = dict(agent_id="a", did=DID, ucid="u", disposition="Interested")

    saved = keyed.set_disposition(**args)
    assert (saved.kind, saved.reason) == ("unavailable", "bad_response")
    assert saved.reason in RESULT_UNKNOWN  # it may have been applied: the agent is told so
    listed = keyed.fetch_dispositions("a", DID, "u")
    assert (listed.ok, listed.error.reason) == (False, "bad_response")
    assert minting.set_disposition(**args).reason == "mint_failed"  # no token taken from it

    assert len(endless.bodies) == 3  # Set, get, Generate Token
    for body in endless.bodies:
        assert MAX_ANSWER_BYTES < body.pulled <= MAX_ANSWER_BYTES + ANSWER_CHUNK
        assert body.closed  # the connection is dropped, not read to its end


def test_a_well_formed_answer_over_the_cap_is_unreadable_over_http(httpserver):
    """Valid JSON, CloudAgent's own words, but longer than the cap: nothing of it is taken."""
    padding = [f"Disposition {i:07d}" for i in range(MAX_ANSWER_BYTES // 16)]
    answers = {
        "get": {"status": "Success", "details": padding},
        "Set": {"status": "Success", "details": "Disposition saved successfully", "x": padding},
    }

    def answer(request):
        body = json.dumps(answers[request.get_json()["action"]])
        assert len(body) > MAX_ANSWER_BYTES
        return Response(body, 200, content_type="application/json")

    httpserver.expect_request("/ca_apis/DispositionAPIV2").respond_with_handler(answer)
    client = CloudAgentClient(
        base_url=httpserver.url_for("/"), username="acme", api_key="k", auth="apikey"
    )
    saved = client.set_disposition(agent_id="a", did=DID, ucid="u", disposition="Interested")
    assert (saved.kind, saved.reason) == ("unavailable", "bad_response")
    listed = client.fetch_dispositions("a", DID, "u")
    assert not listed.ok and listed.names == ()


# -- translations are text, wherever they land -----------------------------------------------

TAMPERED = 'नाम" hx-post="/disposition/save" hx-trigger="load" x="'


def _with_hindi(app, **texts):
    """The app's Hindi catalogue with some texts replaced, as a tampered or careless
    catalogue would have them, its templates compiled afresh."""
    catalogue = copy.copy(app.extensions["catalogue_of"]["hi"])
    catalogue._catalog = dict(catalogue._catalog) | texts
    app.extensions["catalogue_of"]["hi"] = catalogue
    overlay = app.jinja_env.overlay(extensions=[TranslatedWhenCompiled])
    overlay.extend(compiled_translations=catalogue)
    app.extensions["templates"]["hi"] = overlay


def _search_box(html):
    inputs = [tag for tag in HTMLParser(html).tags if tag[0] == "input"]
    return next(dict(attrs) for _, attrs in inputs if ("id", "disposition-search") in attrs)


class HTMLParser(html.parser.HTMLParser):
    def __init__(self, text):
        super().__init__()
        self.tags = []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        self.tags.append((tag, attrs))


def test_a_tampered_translation_cannot_add_attributes_to_the_page(make_app, panels, simulator):
    app = make_app()
    _with_hindi(app, **{"Part of a name": TAMPERED, "Search dispositions": 'खोज "सब"'})
    call = simulator.start_call("agent1", SUPPORT)
    page = panels.on(app.test_client()).open(call.ucid, did=SUPPORT, lang="hi").html
    box = _search_box(page)
    assert box["placeholder"] == TAMPERED  # all of it, as text: no attribute came of it
    assert "hx-post" not in box and "hx-trigger" not in box
    assert page.count('hx-post="/disposition/save"') == 1  # the form's own, only
    # An honest quotation mark, in an element's text, is a quotation mark on the page.
    assert '<label for="disposition-search">खोज &#34;सब&#34;</label>' in page


def test_a_translation_with_values_is_escaped_too(make_app, panels, simulator):
    app = make_app()
    _with_hindi(app, **{"Callback time (%(zone)s)": 'समय "%(zone)s" <b>'})
    call = simulator.start_call("agent1", DID)
    page = panels.on(app.test_client()).open(call.ucid, lang="hi").html
    assert "समय &#34;IST&#34; &lt;b&gt;" in page and "<b>" not in page
