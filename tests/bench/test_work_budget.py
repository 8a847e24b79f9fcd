"""The work budget: one panel load and one save, counted in calls, SQL statements and template
renders (bench/work.py), held to tests/data/work_budget.json. A count does not depend on the
machine's speed or load, so this catches on the day it is written the change that makes the
service do much more work, which a timing could only see weeks later, and then vaguely."""

import json

import pytest

from bench.work import measure
from tests.helpers import DID, LAUNCH_SECRET, ROOT, widget_env
from webapp import create_app
from webapp.simulator import Simulator, start_server

BUDGET = json.loads((ROOT / "tests" / "data" / "work_budget.json").read_text())
GROWTH = 1.10  # calls may grow by up to 10 % unnoticed; statements and renders not at all
HOW = (
    "See what does it with `.venv/bin/python -m bench.work --top 40` here and on the commit "
    "before (git worktree add ../before HEAD~1), and compare. If the growth buys something "
    "wanted, raise the figure in tests/data/work_budget.json in the same commit and say why."
)


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    simulator = Simulator()
    upstream = start_server(simulator)
    app = create_app(widget_env(upstream.url, tmp_path_factory.mktemp("work")))
    try:
        yield measure(app, lambda: simulator.start_call("agent1", DID).ucid, LAUNCH_SECRET)
    finally:
        app.extensions["audit"].close()
        upstream.stop()


@pytest.mark.parametrize("path", ["panel", "save"])
def test_a_path_does_no_more_work_than_its_budget(work, path):
    done, budget = work[path].summary(), BUDGET[path]
    limit = int(budget["calls"] * GROWTH)
    assert done["calls"] <= limit, (
        f"one {path} made {done['calls']} calls, budget {budget['calls']} "
        f"(+{done['calls'] / budget['calls'] - 1:.0%}, more than 10 %). {HOW}"
    )
    for what in ("sql", "renders"):
        assert done[what] <= budget[what], (
            f"one {path}: {done[what]} {what}, budget {budget[what]}. {HOW}"
        )


def test_the_budget_is_not_left_far_above_the_work(work):
    # A budget far above the work would let a regression through unseen: lower it then.
    for path in ("panel", "save"):
        calls, budget = work[path].calls, BUDGET[path]["calls"]
        assert calls >= budget * 0.8, (
            f"one {path} now makes {calls} calls, budget {budget}: lower the budget in "
            "tests/data/work_budget.json to keep it a guard"
        )
