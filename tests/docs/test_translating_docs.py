"""docs/translating.md works as written: in a copy of the project, `make translation CODE=ta`
starts a catalogue, a translator fills it in, and the service speaks Tamil from its next start
with no code change; until it is filled in, the completeness check says what is missing."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest
from babel.messages.pofile import write_po

from tests.helpers import ROOT, catalogue_problems, marked_texts, read_catalogue

DOC = (ROOT / "docs" / "translating.md").read_text(encoding="utf-8")
COPIED = ("Makefile", "babel.cfg", "requirements.txt", "requirements-dev.txt")
COPIED_DIRS = ("webapp", "templates", "static", "translations")
VENV = ROOT / ".venv"

# Run in the copy's own folder, so that `webapp` is the copy's: a panel opened with lang=ta,
# and the demo page's language switch.
OPEN_PANEL = """
import json, sys
from urllib.parse import urlsplit
from webapp import create_app, demo
app = create_app({"WIDGET_DATA_DIR": sys.argv[1]})  # demo mode: the simulator, a demo secret
call = app.extensions["simulator"].start_call("agent1", demo.DID)
with app.test_request_context():
    link = urlsplit(demo.launch_url(call.ucid, "agent1", call.did, lang="ta"))
web = app.test_client()
panel = web.get(link.path + "?" + link.query)
page = web.get("/demo", base_url="http://localhost:" + link.port.__str__())
print(json.dumps({"status": panel.status_code, "panel": panel.get_data(as_text=True),
                  "demo": page.get_data(as_text=True)}))
"""


def tamil(english: str) -> str:
    """A stand-in translator: Tamil script around the English, placeholders kept."""
    return f"த {english} த"


@pytest.fixture
def project(tmp_path):
    if not (VENV / "bin" / "pybabel").exists():
        pytest.skip("needs the project's .venv (make install)")
    copy = tmp_path / "project"
    copy.mkdir()
    for name in COPIED:
        shutil.copy(ROOT / name, copy / name)
    for name in COPIED_DIRS:
        shutil.copytree(ROOT / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    return copy


def make(project, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        ["make", "--no-print-directory", *args, f"VENV={VENV}"],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_the_guide_names_the_commands_this_test_runs():
    assert "make translation CODE=ta" in DOC and "make translations" in DOC
    assert "translations/ta/LC_MESSAGES/messages.po" in DOC


def test_a_new_language_from_the_guide_s_steps(project, tmp_path):
    assert make(project, "translation").returncode == 2  # no CODE: the usage, nothing made
    started = make(project, "translation", "CODE=ta")
    assert started.returncode == 0, started.stderr
    po = project / "translations" / "ta" / "LC_MESSAGES" / "messages.po"
    catalogue = read_catalogue(po, "ta")
    texts = [message for message in catalogue if message.id]
    assert len(texts) > 90 and not any(
        message.string != ("", "") and message.string for message in texts
    )
    assert make(project, "translation", "CODE=ta").returncode == 2  # never overwritten

    # The completeness check of `make test` names every text still to translate.
    found = catalogue_problems(read_catalogue(po, "ta"), marked_texts(project))
    assert sorted(found) == sorted(f"not translated: {message.id!r}" for message in texts)

    for message in texts:  # a count's text has both forms, as Tamil needs
        plural = isinstance(message.id, tuple)
        message.string = tuple(map(tamil, message.id)) if plural else tamil(message.id)
    with po.open("wb") as target:
        write_po(target, catalogue, width=100)
    updated = make(project, "translations")  # what a developer runs after changing texts
    assert updated.returncode == 0, updated.stderr

    env = {k: v for k, v in os.environ.items() if not k.startswith("WIDGET_")}
    shown = subprocess.run(
        [sys.executable, "-c", OPEN_PANEL, str(tmp_path / "data")],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert shown.returncode == 0, shown.stderr
    result = json.loads(shown.stdout.splitlines()[-1])
    assert result["status"] == 200
    assert '<html lang="ta"' in result["panel"]
    assert f">{tamil('Save disposition')}</button>" in result["panel"]
    assert re.search(r'<option value="ta" lang="ta">\s*தமிழ்\s*</option>', result["demo"])
