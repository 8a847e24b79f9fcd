"""Which requests the asgi bridge runs on its event loop rather than in a pool thread
(webapp.push.bridge, `on_loop`): a panel whose every read is in this process's memory.

In a pool thread a request costs two hand-offs between threads, and the loop waits for the
GIL each time the thread holds it as the next request arrives: under load that cost a panel
a tenth to a sixth of its CPU (docs/benchmarks.md, "Sixth round"). On the loop a request must
never wait, for a wait there holds every connection of the worker. So a panel is taken only
when what it reads is in memory now: its dispositions list (DispositionCache.holds: a stale
list is answered while a thread refreshes it), the agent's recent choices
(RecentChoices.holds), and no call state to read from the database (the receivers off:
callstate.for_page). The bridge then marks the request (environ[ON_LOOP]) and the view reads
both with `wait=False`, from memory whatever it holds by then, so nothing that changes between
this question and the view's reads (recent choices dropped past their cap, a copy due to be
checked against Redis) can make it wait. A list never loaded, recent choices due to be read
again, a save, or the receivers on go to the pool as before, and the page is the same.

What the loop may still do once per process: read a language's catalogue and compile a
template the first time it is used (local files, tens of milliseconds at most, as any lazy
import), and start the thread that refreshes a stale list.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qsl

from flask import Flask

from ..cloudagent import DispositionCache, RedisDispositionCache
from .launch import MAX_PARAMS, plain_pairs
from .recent import RecentChoices

PAIRS = "widget.launch_pairs"  # environ: the link's pairs as launch.plain_pairs read them


def panel_on_loop(app: Flask) -> Callable[[dict[str, Any]], bool] | None:
    """The bridge's question for this app (its panel blueprint registered), or None when
    no panel can be answered from memory (the receivers on: each panel reads its call's
    state from the database)."""
    if app.config["WIDGET"].events_token:
        return None
    cache: DispositionCache | RedisDispositionCache = app.extensions["dispositions"]
    recent: RecentChoices = app.extensions["recent"]
    (path,) = (rule.rule for rule in app.url_map.iter_rules("panel.launch"))  # views.launch

    def on_loop(environ: dict[str, Any]) -> bool:
        if environ["REQUEST_METHOD"] != "GET" or environ["PATH_INFO"] != path:
            return False
        raw = environ.get("QUERY_STRING", "")
        pairs = plain_pairs(raw)
        if pairs is not None:
            environ[PAIRS] = pairs  # the view reads the same, not again (views.launch)
        else:  # a link with a %-escape or a + (an accent's #, a caller's +91)
            try:
                pairs = parse_qsl(raw, max_num_fields=MAX_PARAMS + 1)
            except ValueError:  # more parameters than a link may have: the view refuses it
                return False
        query = dict(pairs)  # unverified: it only says where the view will look
        did, agent = query.get("did"), query.get("agentID")
        if did is None or agent is None:
            return False
        return cache.holds(did) and recent.holds(agent, did)

    return on_loop
