"""docs/embedding.md stays true: its examples sign links the widget accepts, its worked
example is what webapp.panel.launch computes, and its postMessage fields are what panel.js sends."""

import ast
import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from urllib.parse import parse_qsl, urlsplit

import pytest

from tests.helpers import LAUNCH_SECRET, ROOT
from webapp.config import DEFAULT_PAUSE_REASONS, load_settings
from webapp.panel import launch, views
from webapp.panel.launch import canonical, sign, verify
from webapp.web import errors

DOC = (ROOT / "docs" / "embedding.md").read_text(encoding="utf-8")
PANEL_JS = (ROOT / "static" / "panel.js").read_text(encoding="utf-8")
OUTCOME_HTML = (ROOT / "templates" / "_outcome.html").read_text(encoding="utf-8")

SECRET = "docs-test-secret/+=0123456789"
BASE_URL = "https://widget.example.com"
# The sample call every example is written with.
SAMPLE = {
    "ucid": "8021736425711201",
    "agentID": "agent1",
    "did": "914071327663",
    "callerID": "+919800000000",
    "callerName": "Zoë Fernandes & Co.",
}
# Swapped in for the sample caller name: every character class that needs encoding, and none
# that would need escaping inside the examples' double-quoted string literals.
TRICKY = "100% a+b=c&d #1 ?x/y ~ ü € 😀 'q' <b> ;,:@"


def marked_block(marker):
    """The fenced block right after `<!-- marker -->`: (language tag, text)."""
    found = re.findall(
        rf"<!-- {re.escape(marker)} -->\n```([\w-]*)\n(.*?)\n```\n", DOC, flags=re.DOTALL
    )
    assert len(found) == 1, f"expected one block marked {marker!r}, found {len(found)}"
    return found[0]


def table_rows(marker_line):
    """First-column cells (backticks stripped) of the markdown table at or after a line."""
    start = DOC.index(marker_line)
    rows = []
    for line in DOC[start:].splitlines():
        if not line.startswith("|"):
            if rows:
                break
            continue
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows.append(cells)
    header, rule, *body = rows
    assert set(rule[0]) <= {"-", " "}
    return [cells[0].strip("`") for cells in body]


def with_value(source, value):
    assert source.count(SAMPLE["callerName"]) == 1
    return source.replace(SAMPLE["callerName"], value)


def run(argv, env_extra=None, secret=SECRET):
    env = os.environ | {"WIDGET_LAUNCH_SECRET": secret} | (env_extra or {})
    done = subprocess.run(
        argv, env=env, capture_output=True, text=True, encoding="utf-8", timeout=60
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == 1, done.stdout
    return lines[0]


NODE, BASH, OPENSSL = shutil.which("node"), shutil.which("bash"), shutil.which("openssl")
NEEDS_NODE = pytest.mark.skipif(not NODE, reason="node is not installed")
NEEDS_SHELL = pytest.mark.skipif(not (BASH and OPENSSL), reason="needs bash and openssl")


def run_example(kind, tmp_path, caller_name, env_extra=None, secret=SECRET):
    """Run the documented example as a program; its printed launch URL."""
    file_name, argv = {
        "python": ("launch_url.py", [sys.executable]),
        "node": ("launch-url.js", [NODE]),
        "shell": ("launch-url.sh", [BASH]),
    }[kind]
    script = tmp_path / file_name
    script.write_text(with_value(marked_block(f"example: {kind}")[1], caller_name), "utf-8")
    return run([*argv, str(script)], env_extra, secret)


def check_url(url, expected):
    """The printed URL is a launch the widget accepts, carrying exactly `expected`."""
    parts = urlsplit(url)
    assert f"{parts.scheme}://{parts.netloc}" == BASE_URL
    assert parts.path == "/disposition" and not parts.fragment
    items = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    call = verify(items, SECRET, max_age=600)
    assert (call.ucid, call.agent_id, call.did) == (
        expected["ucid"],
        expected["agentID"],
        expected["did"],
    )
    params = dict(items)
    assert {k: v for k, v in params.items() if k not in ("ts", "sig")} == expected
    assert call.extra == {k: v for k, v in expected.items() if k not in launch.REQUIRED}
    assert abs(int(params["ts"]) - time.time()) < 60


VALUES = pytest.mark.parametrize(
    "caller_name", [SAMPLE["callerName"], TRICKY], ids=["as written", "tricky value"]
)


# -- the signing examples --------------------------------------------------------------------


def test_every_example_is_marked_with_its_language():
    assert marked_block("example: python")[0] == "python"
    assert marked_block("example: node")[0] == "javascript"
    assert marked_block("example: shell")[0] == "bash"


@VALUES
def test_the_python_example_signs_an_accepted_link(tmp_path, caller_name):
    url = run_example("python", tmp_path, caller_name)
    check_url(url, SAMPLE | {"callerName": caller_name})


def test_the_python_example_needs_only_the_standard_library():
    tree = ast.parse(marked_block("example: python")[1])
    modules = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            modules.update(alias.name.partition(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            modules.add((node.module or "").partition(".")[0])
    assert modules and modules <= sys.stdlib_module_names


@NEEDS_NODE
@VALUES
def test_the_node_example_signs_an_accepted_link(tmp_path, caller_name):
    url = run_example("node", tmp_path, caller_name)
    check_url(url, SAMPLE | {"callerName": caller_name})


@NEEDS_SHELL
@VALUES
@pytest.mark.parametrize("locale", ["C", "C.UTF-8"])
def test_the_shell_example_signs_an_accepted_link(tmp_path, caller_name, locale):
    # Percent-encoding works byte by byte, whatever locale the shell runs in.
    url = run_example("shell", tmp_path, caller_name, {"LC_ALL": locale})
    check_url(url, SAMPLE | {"callerName": caller_name})


@pytest.mark.parametrize(
    "kind",
    ["python", pytest.param("node", marks=NEEDS_NODE), pytest.param("shell", marks=NEEDS_SHELL)],
)
def test_an_example_link_opens_the_panel(web, tmp_path, kind):
    """End to end through the widget's own query parsing (Flask's test client)."""
    url = run_example(kind, tmp_path, TRICKY, secret=LAUNCH_SECRET)
    parts = urlsplit(url)
    items = parse_qsl(parts.query, keep_blank_values=True)
    assert dict(items)["callerName"] == TRICKY
    response = web.get(f"{parts.path}?{parts.query}")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert SAMPLE["ucid"] in response.get_data(as_text=True)


@pytest.mark.parametrize("kind", ["python", "node", "shell"])
def test_every_example_reads_the_secret_from_the_environment(kind):
    source = marked_block(f"example: {kind}")[1]
    assert "WIDGET_LAUNCH_SECRET" in source
    assert SECRET not in source


# -- the worked example ----------------------------------------------------------------------


def worked_inputs():
    lines = marked_block("worked-example: inputs")[1].splitlines()
    params = dict(line.split("=", 1) for line in lines)
    return params.pop("WIDGET_LAUNCH_SECRET"), params


def test_the_worked_example_canonical_string_and_sig_match_the_code():
    secret, params = worked_inputs()
    assert canonical(params) == marked_block("worked-example: canonical")[1]
    assert sign(params, secret) == marked_block("worked-example: sig")[1].strip()


def test_the_worked_example_url_is_accepted_at_its_ts():
    secret, params = worked_inputs()
    url = marked_block("worked-example: url")[1].strip()
    parts = urlsplit(url)
    items = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
    verify(items, secret, max_age=600, now=int(params["ts"]))
    assert dict(items) == params | {"sig": sign(params, secret)}
    assert "callerID=%2B" in url  # the documented advice: a "+" goes as %2B


def test_the_stated_limits_match_launch_py():
    assert f"at most {launch.MAX_PARAMS} parameters" in DOC
    assert f"at most {launch.MAX_VALUE} characters" in DOC
    assert f"now + {launch.FUTURE_SKEW}" in DOC
    assert "`ucid`, `agentID` and `did`" in DOC and launch.REQUIRED == ("ucid", "agentID", "did")


# -- configuration ---------------------------------------------------------------------------


def test_the_documented_defaults_match_the_configuration():
    settings = load_settings({}, instance_path="unused")  # demo mode: no variable needed
    text = DOC[DOC.index("## 4.") : DOC.index("## 5.")]
    max_age, context_max_age = settings.launch_max_age, settings.context_max_age
    assert re.search(rf"\| `WIDGET_LAUNCH_MAX_AGE` \|[^\n]*default `{max_age}`", text)
    assert re.search(rf"\| `WIDGET_CONTEXT_MAX_AGE` \|[^\n]*default `{context_max_age}`", text)
    assert f"default `{', '.join(DEFAULT_PAUSE_REASONS)}`" in text
    assert settings.frame_ancestors[0] == "'self'" and "default `'self'`" in text
    config_py = (ROOT / "webapp" / "config.py").read_text(encoding="utf-8")
    for name in table_rows("| variable | what it means for the CRM |"):
        assert f'"{name}"' in config_py, name


# -- postMessage -----------------------------------------------------------------------------


def panel_message_keys():
    body = re.search(r"const message = \{\n(.*?)\n\s*\};", PANEL_JS, flags=re.DOTALL).group(1)
    return re.findall(r"^\s*(\w+):", body, flags=re.MULTILINE)


def test_the_documented_message_fields_are_the_ones_panel_js_sends():
    keys = panel_message_keys()
    assert len(keys) == 11
    example = json.loads(marked_block("postmessage: example")[1])
    assert list(example) == keys
    assert table_rows("| field | meaning |") == keys
    message_type = re.search(r'const MESSAGE_TYPE = "([^"]+)";', PANEL_JS).group(1)
    assert example["type"] == message_type
    assert re.search(r"^\s*version: (\d+),$", PANEL_JS, flags=re.MULTILINE).group(1) == str(
        example["version"]
    )
    assert f'`type: "{message_type}"`' in DOC or f'always `"{message_type}"`' in DOC


def test_the_documented_outcomes_are_the_ones_the_panel_shows():
    titles = re.search(r"set titles = \{(.*?)\}", OUTCOME_HTML, flags=re.DOTALL).group(1)
    kinds = re.findall(r'"(\w+)":', titles)
    assert table_rows("<!-- postmessage: outcomes -->") == kinds
    # The panel's own "result unknown" outcome, when the widget's server cannot be reached.
    local = re.search(r'showLocalOutcome\(\s*"(\w+)"', PANEL_JS).group(1)
    assert local in kinds and f'`outcome: "{local}"`' in DOC


def test_messages_never_go_to_every_origin():
    assert "postMessage(message, origin)" in PANEL_JS
    assert '"*")' not in PANEL_JS and "'*')" not in PANEL_JS


RELEASES = json.loads((ROOT / "tests" / "data" / "embed_releases.json").read_text())
NEWEST = max(RELEASES, key=lambda version: tuple(map(int, version.split("."))))
EMBED_JS = (ROOT / "static" / "embed" / f"{NEWEST}.js").read_bytes()
PANEL_CSS = (ROOT / "static" / "panel.css").read_text(encoding="utf-8")


def test_the_published_integrity_is_the_newest_releases_own():
    digest = base64.b64encode(hashlib.sha384(EMBED_JS).digest()).decode()
    assert RELEASES[NEWEST] == f"sha384-{digest}"
    published = re.findall(r'integrity="(sha384-[^"]+)"', DOC)
    # The newest release's, and the frozen /embed.js's in the Upgrades table.
    assert set(published) == {RELEASES[NEWEST], RELEASES["1.0.0"]}
    for block in ("embed: script", "embed: host page"):
        language, text = marked_block(block)
        assert language == "html"
        assert f'embed/{NEWEST}.js"' in text and f'integrity="{RELEASES[NEWEST]}"' in text


def test_the_documented_refusal_reasons_are_the_ones_the_widget_sends():
    code = {
        launch.BAD_SIGNATURE,
        launch.EXPIRED_LINK,
        launch.MALFORMED_LINK,
        views.PANEL_EXPIRED,
        views.PANEL_INVALID,
        errors.NOT_FOUND,
        errors.BAD_REQUEST,
        errors.SERVER_ERROR,
    }
    assert set(table_rows("<!-- postmessage: refusals -->")) == code


def test_the_documented_events_are_the_ones_the_panel_sends_and_takes():
    sent = re.findall(r'event: "([a-z-]+)"', PANEL_JS)
    assert sorted(set(sent)) == sorted(table_rows("<!-- postmessage: events -->"))
    taken = re.findall(r'data\.event === "([a-z-]+)"', PANEL_JS)
    assert sorted(taken) == sorted(table_rows("<!-- host messages -->"))
    # The host page's side: what embed.js listens for and sends.
    embed = EMBED_JS.decode()
    assert set(re.findall(r'data\.event === "([a-z-]+)"', embed)) == set(sent)
    assert set(re.findall(r'event: "([a-z-]+)"', embed)) == set(taken)
    for name in ("disposition", "comments", "pause", "pauseReason", "callbackTime"):
        assert f"`{name}`" in DOC and f'"{name}"' in embed


def test_the_documented_embed_calls_exist():
    embed = EMBED_JS.decode()
    for call in ("mount", "open", "callEnded", "prefill", "destroy"):
        assert re.search(rf"\b{call}\b[:(]", embed), call
    assert len(EMBED_JS) < 6000  # small: one request, nothing else to load


def test_the_documented_theme_properties_are_the_stylesheets():
    rows = table_rows("<!-- theme: properties -->")
    names = []
    for row in rows:
        for name in re.findall(r"--[a-z-]+\*?", row.replace("`", "")):
            if name.endswith("*"):
                names += [f"{name[:-1]}{part}" for part in ("bg", "ink", "line")]
            else:
                names.append(name)
    declared = set(re.findall(r"(--[a-z-]+):", PANEL_CSS))
    assert names and set(names) <= declared, set(names) - declared
    assert declared <= set(names), declared - set(names)  # every property is documented
