"""The agent's panel: a signed launch link opens it, htmx saves from it, the outcome shows in it.

- launch.py: the launch link's signature (what a CRM signs);
- context.py: the signed, time-limited call context the page carries instead of a cookie;
- forms.py: the disposition form, its checks in the agent's words, and cookie-less CSRF;
- callbacks.py: which dispositions need a callback time, and reading and writing it;
- recent.py: the agent's recent dispositions on a DID, from the audit trail, cached;
- texts.py: the texts panel.js writes itself, in the panel's language;
- callstate.py: what CloudAgent said about the call (its end, the disposition it kept), for
  the page;
- views.py: the blueprint: open, reload the form, save (audit row, CloudAgent, outcome);
- onloop.py: which panels the asgi bridge may answer on its event loop (all in memory).
"""

from flask import Flask

from ..config import Settings
from ..web.before_send import ON_LOOP
from .callbacks import CallbackRule
from .forms import COMMENTS_MAX
from .onloop import panel_on_loop
from .recent import RecentChoices
from .shells import Shells
from .texts import script_texts
from .views import bp

__all__ = ["COMMENTS_MAX", "init_app", "script_texts"]


def init_app(app: Flask, settings: Settings) -> None:
    """The panel's blueprint and what it keeps: the callback rule, the recent choices (which
    read the audit log, so the stores come first)."""
    app.extensions["callbacks"] = CallbackRule(
        settings.callback_dispositions, settings.cloudagent_timezone
    )
    app.extensions["recent"] = RecentChoices(app.extensions["audit"])
    app.extensions["shells"] = Shells()
    app.extensions["outcome_shells"] = Shells()  # the save's answers: a few dozen at most
    app.register_blueprint(bp)
    app.extensions[ON_LOOP] = panel_on_loop(app)
