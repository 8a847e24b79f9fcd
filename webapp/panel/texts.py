"""The translations of what panel.js writes itself. Its texts are written in English in the
script and marked like the server's (`_`, `ngettext`, `N_`), so `make translations` collects
them; a page in another language carries their translations as JSON (data-texts), and an
English page carries nothing."""

from __future__ import annotations

import json
from functools import lru_cache
from pathlib import Path

from babel.messages.extract import extract_from_file
from babel.support import NullTranslations
from flask import current_app
from jinja2.utils import htmlsafe_json_dumps
from markupsafe import Markup

from .. import i18n

SCRIPT = "panel.js"
KEYWORDS = {"_": None, "ngettext": (1, 2), "N_": None}


def script_texts() -> Markup:
    """The script's texts in this request's language, as JSON safe in an HTML attribute;
    empty in English. Worked out once per language."""
    translations = i18n.active()
    if translations is i18n.NULL:
        return Markup()
    return _as_json(translations, Path(current_app.static_folder) / SCRIPT)


@lru_cache(maxsize=32)
def script_messages(path: Path) -> tuple[str | tuple[str, str], ...]:
    """The texts marked in the script, as babel.cfg's extraction finds them."""
    return tuple(m[1] for m in extract_from_file("javascript", path, keywords=KEYWORDS))


@lru_cache(maxsize=32)
def _as_json(translations: NullTranslations, path: Path) -> Markup:
    texts: dict[str, str | list[str]] = {}
    for message in script_messages(path):
        if isinstance(message, tuple):  # a count's two forms, for 1 and for more
            singular, plural = message
            texts[singular] = [translations.ungettext(singular, plural, n) for n in (1, 2)]
        else:
            texts[message] = translations.ugettext(message)
    return htmlsafe_json_dumps(texts, dumps=json.dumps, ensure_ascii=False)
