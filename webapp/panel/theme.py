"""The panel's look, chosen by the CRM in the signed launch link: `theme` (light, dark, or auto
to follow the agent's system) and `accent` (the CRM's own colour, #RRGGBB).

The stylesheet draws every colour from CSS custom properties (docs/embedding.md lists them).
An accent becomes three of them, each kept readable whatever colour the CRM picks: the fill of
the Save button, the text on it, and the accent used as text and focus ring on the panel's
background, light or dark (WCAG AA: 4.5:1 at least).
"""

from __future__ import annotations

import base64
import hashlib
import re
from dataclasses import dataclass

THEMES = ("light", "dark", "auto")
DEFAULT_THEME = "auto"
LIGHT_BG, DARK_BG = "#ffffff", "#161b22"  # panel.css's --bg in each theme
INKS = ("#ffffff", "#111418")
AA = 4.5
_HEX = re.compile(r"#([0-9a-fA-F]{6})")


def theme_of(value: str | None) -> str:
    return value if value in THEMES else DEFAULT_THEME


def _rgb(colour: str) -> tuple[float, float, float]:
    raw = colour.lstrip("#")
    return tuple(int(raw[i : i + 2], 16) / 255 for i in (0, 2, 4))  # type: ignore[return-value]


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(max(0.0, min(1.0, c)) * 255):02x}" for c in rgb)


def luminance(colour: str) -> float:
    def linear(c: float) -> float:
        return c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (linear(c) for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    light, dark = sorted((luminance(a), luminance(b)), reverse=True)
    return (light + 0.05) / (dark + 0.05)


def _toward(colour: str, target: str, share: float) -> str:
    c, t = _rgb(colour), _rgb(target)
    return _hex(tuple(x + (y - x) * share for x, y in zip(c, t, strict=True)))  # type: ignore[arg-type]


def readable_on(colour: str, background: str) -> str:
    """`colour`, moved toward black or white (whichever the background is not) by the least
    that makes it readable on `background`."""
    away = "#000000" if luminance(background) > 0.18 else "#ffffff"
    for step in range(21):
        candidate = _toward(colour, away, step / 20)
        if contrast(candidate, background) >= AA:
            return candidate
    return away


@dataclass(frozen=True)
class Accent:
    fill: str  # the Save button
    ink: str  # text on the fill
    text_light: str  # the accent as text and focus ring on the light background
    text_dark: str  # ... and on the dark one

    @property
    def css(self) -> str:
        return (
            f":root{{--accent:{self.fill};--accent-ink:{self.ink};"
            f"--accent-text:light-dark({self.text_light},{self.text_dark});"
            f"--focus:light-dark({self.text_light},{self.text_dark})}}"
        )

    @property
    def csp_source(self) -> str:
        digest = hashlib.sha256(self.css.encode()).digest()
        return f"'sha256-{base64.b64encode(digest).decode()}'"


def accent_of(value: str | None) -> Accent | None:
    """The CRM's accent, made readable; None for no accent or one that is not #RRGGBB."""
    if not value or not _HEX.fullmatch(value):
        return None
    fill = value.lower()
    ink = max(INKS, key=lambda candidate: contrast(candidate, fill))
    if contrast(ink, fill) < AA:
        fill = readable_on(fill, ink)  # a mid tone: darken (or lighten) it under the ink
    return Accent(
        fill=fill,
        ink=ink,
        text_light=readable_on(value.lower(), LIGHT_BG),
        text_dark=readable_on(value.lower(), DARK_BG),
    )
