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
Each shell's fixed text is deflated once too, so that a panel's gzip is put together rather
than compressed (webapp.web.compression.Deflated).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Hashable, Mapping
from typing import NamedTuple

from markupsafe import Markup, escape

from ..web.compression import Deflated, deflate_text

MARK = "\x00"  # never in a call value (launch.py and context.py admit no control characters)
MAX_SHELLS = 256  # looks × lists × languages × recent choices: a few dozen on a busy floor


class Filled(NamedTuple):
    """A page as bytes (UTF-8), and its pieces for gzip when it came from a shell."""

    body: bytes
    deflated: Deflated | None


class _Shell(NamedTuple):
    parts: tuple[str, ...]  # text, name, text, name, ..., text
    encoded: tuple[bytes, ...]  # each text, UTF-8
    deflated: tuple[bytes, ...]  # each text, deflated


class Shells:
    """Rendered shells by key, at most MAX_SHELLS (the oldest half dropped past that)."""

    def __init__(self, maxsize: int = MAX_SHELLS) -> None:
        self._shells: dict[Hashable, _Shell | None] = {}
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
        shell = self._shell(key, render, values)
        if shell is None:  # a marker character where none belongs: no shell for this key
            return render(values)
        filled = _escaped(values)
        out = list(shell.parts)
        for i in range(1, len(out), 2):
            out[i] = filled[out[i]]
        return "".join(out)

    def fill(
        self,
        key: Hashable,
        render: Callable[[Mapping[str, str]], str],
        values: Mapping[str, str],
    ) -> Filled:
        """page() as bytes, with its pieces for gzip: the shell's texts deflated once and
        this page's values between them (webapp.web.compression.Deflated)."""
        shell = self._shell(key, render, values)
        if shell is None:
            return Filled(render(values).encode(), None)
        filled = _escaped(values)
        encoded = shell.encoded
        placed = tuple(filled[name].encode() for name in shell.parts[1::2])
        pieces = [encoded[0]]
        for value, text in zip(placed, encoded[1:], strict=True):
            pieces += (value, text)
        body = b"".join(pieces)
        return Filled(body, Deflated(shell.deflated, placed, body))

    def _shell(
        self,
        key: Hashable,
        render: Callable[[Mapping[str, str]], str],
        values: Mapping[str, str],
    ) -> _Shell | None:
        shell = self._shells.get(key, False)
        if shell is False:
            markers = {name: Markup(f"{MARK}{name}{MARK}") for name in values}  # noqa: S704
            shell = _made(render(markers), frozenset(values))
            with self._lock:
                if len(self._shells) >= self._maxsize:
                    for old in list(self._shells)[: self._maxsize // 2]:
                        del self._shells[old]
                self._shells[key] = shell
        return shell

    def clear(self) -> None:
        with self._lock:
            self._shells.clear()


# What markupsafe's escape replaces: a value without any of these is its own escape (a
# call's ids, its tokens), and a search for them costs less than escape's own checks.
_ESCAPED = re.compile(r"[&<>\"']")


def _escaped(values: Mapping[str, str]) -> dict[str, str]:
    return {
        name: value
        if isinstance(value, Markup) or (type(value) is str and not _ESCAPED.search(value))
        else escape(value)
        for name, value in values.items()
    }


def _made(rendered: str, names: frozenset[str]) -> _Shell | None:
    """The shell as text, name, text, name, ..., text; None unless every marker is whole."""
    parts = tuple(rendered.split(MARK))
    if len(parts) % 2 == 0 or any(parts[i] not in names for i in range(1, len(parts), 2)):
        return None
    encoded = tuple(text.encode() for text in parts[0::2])
    return _Shell(parts, encoded, tuple(map(deflate_text, encoded)))
