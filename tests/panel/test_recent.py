"""Recent choices: the agent's last distinct dispositions on a DID head the list, from the
audit trail, without a CloudAgent call and mostly without a database read."""

import re

import pytest

from tests.helpers import DID, SUPPORT, Clock, outcome_of
from webapp.audit import Attempt
from webapp.panel.recent import RecentChoices


def record(audit, disposition, outcome="queued", agent="agent1", did=DID):
    entry = audit.begin(
        Attempt(agent, "u1", did, disposition, pause=False, pause_reason="", callback_time="")
    )
    audit.finish(
        entry, outcome=outcome, reason=outcome, upstream_status=None, upstream_text=None,
        latency_ms=1.0,
    )  # fmt: skip


def recent_group(html):
    group = re.search(r'<optgroup label="Recent">(.*?)</optgroup>', html, re.S)
    if group is None:
        return []
    return re.findall(r'<option value="([^"]*)" data-recent="(\d)"', group.group(1))


def test_the_trail_gives_the_last_distinct_successful_choices_newest_first(app):
    audit = app.extensions["audit"]
    for name in ["A", "B", "A", "C", "D", "E", "F"]:
        record(audit, name)
    record(audit, "Refused", outcome="rejected")
    record(audit, "Unknown", outcome="unknown")
    record(audit, "G", outcome="saved")
    record(audit, "Other agent", agent="agent2")
    record(audit, "Other DID", did=SUPPORT)
    assert audit.recent_dispositions("agent1", DID) == ["G", "F", "E", "D", "C"]
    assert audit.recent_dispositions("agent1", SUPPORT) == ["Other DID"]
    assert audit.recent_dispositions("agent3", DID) == []


class CountingAudit:
    def __init__(self, names):
        self.names = names
        self.reads = 0
        self.down = False

    def recent_dispositions(self, agent, did, limit):
        self.reads += 1
        if self.down:
            raise OSError("database unreachable")
        return self.names[:limit]


def test_choices_are_kept_a_while_and_a_save_here_goes_first_at_once():
    audit, clock = CountingAudit(["A", "B"]), Clock(100.0)
    recent = RecentChoices(audit, ttl=30, clock=clock)
    assert recent.get("agent1", DID) == ("A", "B")
    clock.now += 29
    assert recent.get("agent1", DID) == ("A", "B") and audit.reads == 1
    recent.saved("agent1", DID, "C")
    recent.saved("agent1", DID, "B")
    assert recent.get("agent1", DID) == ("B", "C", "A") and audit.reads == 1
    clock.now += 2  # the entry is 31 s old: read again (another process may have saved)
    audit.names = ["D"]
    assert recent.get("agent1", DID) == ("D",) and audit.reads == 2
    recent.saved("agent2", DID, "X")  # nothing kept for agent2: read when first asked
    assert recent.get("agent2", DID) == ("D",) and audit.reads == 3


def test_a_trail_that_cannot_be_read_leaves_the_list_as_it_was():
    audit, clock = CountingAudit(["A"]), Clock(100.0)
    recent = RecentChoices(audit, ttl=30, clock=clock)
    audit.down = True
    assert recent.get("agent1", DID) == ()  # the panel opens, without Recent
    audit.down = False
    assert recent.get("agent1", DID) == ("A",)
    clock.now += 60
    audit.down = True
    assert recent.get("agent1", DID) == ("A",)  # what it had, rather than nothing


def test_the_panel_heads_the_list_with_the_recent_group_after_a_save(panels, simulator, make_app):
    web = make_app().test_client()
    first = panels.on(web).open(simulator.start_call("agent1", SUPPORT).ucid, did=SUPPORT)
    assert 'label="Recent"' not in first.html  # nothing saved yet: the list as it was
    for name in ["Issue resolved", "Refund initiated", "Issue resolved"]:
        assert outcome_of(first.save(disposition=name)) == "queued"
    before = simulator.stats()["requests"]
    later = panels.on(web).open(simulator.start_call("agent1", SUPPORT).ucid, did=SUPPORT)
    assert recent_group(later.html) == [("Issue resolved", "1"), ("Refund initiated", "2")]
    assert 'aria-keyshortcuts="Alt+1"' in later.html
    assert '<optgroup label="All dispositions">' in later.html
    assert later.html.count('<option value="Issue resolved"') == 2  # in Recent and in All
    assert simulator.stats()["requests"] == before  # no CloudAgent call to open it
    other_agent = panels.on(web).open(
        simulator.start_call("agent2", SUPPORT).ucid, agent="agent2", did=SUPPORT
    )
    assert recent_group(other_agent.html) == []


def test_a_recent_choice_no_longer_on_the_list_is_not_offered(app, panels, call):
    record(app.extensions["audit"], "Retired disposition")
    record(app.extensions["audit"], "Interested")
    panel = panels.open(call.ucid)
    assert recent_group(panel.html) == [("Interested", "1")]
    hint = re.search(r'<p class="hint" id="shortcuts" title="([^"]*)">(.*?)</p>', panel.html, re.S)
    assert hint.group(1) == "Alt+1: Interested"
    assert "<kbd>Alt</kbd>+<kbd>1</kbd> recent" in hint.group(2)


@pytest.mark.parametrize("did, searchable", [(DID, False), (SUPPORT, True)])
def test_a_list_longer_than_ten_gets_a_search_box(panels, simulator, did, searchable):
    panel = panels.open(simulator.start_call("agent1", did).ucid, did=did)
    assert ('<label for="disposition-search">Search dispositions</label>' in panel.html) is (
        searchable
    )
    assert '<label for="disposition">Disposition</label>' in panel.html
    if searchable:
        assert "60 dispositions" in panel.html
