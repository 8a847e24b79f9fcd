"""The agent's panel: a signed launch link opens it, htmx saves from it, the outcome shows in it.

- launch.py: the launch link's signature (what a CRM signs);
- context.py: the signed, time-limited call context the page carries instead of a cookie;
- forms.py: the disposition form, its checks in the agent's words, and cookie-less CSRF;
- views.py: the blueprint: open, reload the form, save (audit row, CloudAgent, outcome).
"""

from .forms import COMMENTS_MAX
from .views import bp

__all__ = ["COMMENTS_MAX", "bp"]
