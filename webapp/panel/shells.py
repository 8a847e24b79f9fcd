"""The panel page rendered once per look and list, then filled in for each call.

A panel's HTML differs from one call to the next only in a few values (the call's ids, its
context and CSRF tokens, what CloudAgent said of it); the rest (the language's texts, the
account's dispositions, the agent's recent ones, the callback day list, the theme) is the same
for every call of a line. Rendering the whole template for each panel was a fifth of its CPU.
So the template is rendered once per such key with a marker in place of each call value, and
each panel is the shell with the values, escaped as the template would escape them, put in.

The save's answer (views._outcome) is made the same way, from shells of its own, one per
language, kind and the parts it has (tests/panel/test_outcome_shells.py).

The result is byte for byte what the template renders (tests/panel/test_shells.py compares
them over many calls). A shell is kept only when its markers are exactly where the values
went: a list or a text that itself held the marker character is rendered in full every time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable, Mapping

from markupsafe import Markup, escape

MARK = "\x00"  # never in a call value (launch.py and context.py admit no control characters)
MAX_SHELLS = 256  # looks × lists × languages × recent choices: a few dozen on a busy floor


class Shells:
    """Rendered shells by key, at most MAX_SHELLS (the oldest half dropped past that)."""

    def __init__(self, maxsize: int = MAX_SHELLS) -> None:
        self._shells: dict[Hashable, tuple[str, ...] | None] = {}
        self._maxsize = maxsize
        self._lock = threading.Lock()

    def page(
        self,
        key: Hashable,
        render: Callable[[Mapping[str, str]], str],
        values: Mapping[str, str],
    ) -> str:
        """The page for `values` (name -> a call's value): `render(values)` renders the
        template with them, once per key with markers in their place. A Markup value goes
        in as it is, a str escaped: as the template's autoescaping does."""
        parts = self._shells.get(key, False)
        if parts is False:
            markers = {name: Markup(f"{MARK}{name}{MARK}") for name in values}  # noqa: S704
            parts = _split(render(markers), frozenset(values))
            with self._lock:
                if len(self._shells) >= self._maxsize:
                    for old in list(self._shells)[: self._maxsize // 2]:
                        del self._shells[old]
                self._shells[key] = parts
        if parts is None:  # a marker character where none belongs: no shell for this key
            return render(values)
        filled = {
            name: value if isinstance(value, Markup) else escape(value)
            for name, value in values.items()
        }
        out = list(parts)
        for i in range(1, len(out), 2):
            out[i] = filled[out[i]]
        return "".join(out)

    def clear(self) -> None:
        with self._lock:
            self._shells.clear()


def _split(rendered: str, names: frozenset[str]) -> tuple[str, ...] | None:
    """The shell as text, name, text, name, ..., text; None unless every marker is whole."""
    parts = tuple(rendered.split(MARK))
    if len(parts) % 2 == 0 or any(parts[i] not in names for i in range(1, len(parts), 2)):
        return None
    return parts
