"""The agent's language: Flask-Babel with the catalogues in translations/, compiled in memory
at start-up (nothing to build, nothing written to disk).

A panel's language is chosen once, when it opens: the signed launch link's `lang`, else the
browser's Accept-Language, else WIDGET_DEFAULT_LANGUAGE. The call context carries it, so every
answer to that panel speaks the same language. Logs, audit rows, metrics and postMessage keys
stay English; only what people read is translated.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator, Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations
from flask import Flask, current_app, g, has_request_context, request
from flask_babel import Babel, Domain, refresh
from jinja2 import Environment, Template
from jinja2.ext import Extension
from jinja2.lexer import Token, TokenStream
from markupsafe import Markup, escape
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

from .config import ConfigError

log = logging.getLogger("webapp")

SOURCE_LANGUAGE = "en"  # the msgids: the service's own English
DOMAIN = "messages"


def N_(message: str) -> str:  # noqa: N802 (gettext's name for it)
    """Marks a message for the catalogues where it is made; it is translated where shown."""
    return message


def catalogue_paths(folder: Path) -> dict[str, Path]:
    """Every language with a catalogue: translations/<lang>/LC_MESSAGES/messages.po."""
    return {
        path.parent.parent.name: path for path in sorted(folder.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    }


def compile_catalogue(path: Path, language: str) -> Translations:
    """A .po file as gettext translations, without writing a .mo file. Fuzzy entries (not
    yet reviewed) are left out, as `pybabel compile` does."""
    with path.open("rb") as source:
        catalogue = read_po(source, locale=language)
    compiled = io.BytesIO()
    write_mo(compiled, catalogue, use_fuzzy=False)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


class Catalogues(Domain):
    """Flask-Babel's domain (lazy_gettext, flask_babel.gettext), answered from the catalogues
    compiled at start-up."""

    def get_translations(self) -> Translations | NullTranslations:
        return active() if has_request_context() else NULL


NULL = NullTranslations()  # English: the msgids as they are


def languages() -> tuple[str, ...]:
    return current_app.extensions["languages"]


def primary(tag: str | None) -> str:
    """The language of a tag as a CRM may write it: `hi-IN`, `HI` and `hi_IN` are `hi`."""
    return (tag or "").replace("_", "-").partition("-")[0].lower()


def choose(
    asked: str | None, *, app: Flask | None = None, environ: Mapping[str, Any] | None = None
) -> str:
    """The language of a panel opening now: `asked` (the launch link's) if the service has
    it, else the browser's preference, else the configured default. A CRM's `hi-IN`, `HI` or
    `hi_IN` asks for Hindi. `app` and `environ`, when the caller holds them, spare looking
    them up again through Flask's proxies (each look-up is ~0.6 µs; a panel made twenty)."""
    app = app or current_app._get_current_object()
    available = app.extensions["languages"]
    if asked and primary(asked) in available:
        return primary(asked)
    if environ is None:
        environ = request.environ
    header = environ.get("HTTP_ACCEPT_LANGUAGE")  # headers[...] raises when absent
    preferred = _preferred(header, available) if header else None
    return preferred or app.config["WIDGET"].default_language


@lru_cache(maxsize=256)
def _preferred(accept_language: str, available: tuple[str, ...]) -> str | None:
    """The best of `available` for an Accept-Language header: parsed once per distinct
    header (a browser sends the same one every time; parsing it was ~11 µs a panel)."""
    return parse_accept_header(accept_language, LanguageAccept).best_match(available)


def use(language: str | None, *, app: Flask | None = None) -> None:
    """Answer this request in `language` (a panel's, from its context) if the service has it."""
    found = (app or current_app).extensions["catalogue_of"].get(language)
    if found is not None:
        here = g._get_current_object()
        here.language, here.translations = language, found
        # Flask-Babel keeps the first locale it was asked for in a request, in g._flask_babel
        # (made when it is first asked): nothing to forget before that.
        if "_flask_babel" in here:
            refresh()


def current() -> str:
    """This request's language: its panel's, or else what its browser asks for."""
    language = g.get("language")
    if language is None:
        use(choose(None))
        language = g.language
    return language


def active() -> Translations | NullTranslations:
    """This request's catalogue, looked up once. Flask-Babel finds the locale and the domain
    again on every call, which a panel with forty texts pays forty times."""
    found = g.get("translations")
    if found is None:
        current()
        found = g.translations
    return found


def gettext(message: str, **values: object) -> str:
    """`message` in this request's language, its %(name)s placeholders filled."""
    text = active().ugettext(message)
    return text % values if values else text


def ngettext(singular: str, plural: str, num: int, **values: object) -> str:
    """The form for `num` in this request's language, %(num)s and the others filled."""
    return active().ungettext(singular, plural, num) % {"num": num, **values}


def init_app(app: Flask, folder: Path, default: str) -> None:
    found = catalogue_paths(folder)
    translations = {language: compile_catalogue(path, language) for language, path in found.items()}
    available = (SOURCE_LANGUAGE, *sorted(found))
    if default not in available:
        raise ConfigError(
            f"WIDGET_DEFAULT_LANGUAGE: {default!r} has no catalogue; one of {', '.join(available)}"
        )
    app.extensions["languages"] = available
    # Every language's catalogue, English's the msgids themselves: one lookup a request.
    app.extensions["catalogue_of"] = {
        language: translations.get(language, NULL) for language in available
    }
    babel = Babel(app, locale_selector=current, default_locale=SOURCE_LANGUAGE)
    babel.domain_instance = Catalogues(domain=DOMAIN)  # in place of reading .mo files
    app.jinja_env.install_gettext_callables(  # in place of Flask-Babel's: one lookup a request
        # Escaped: a catalogue's text is text, not markup (see TranslatedWhenCompiled).
        gettext=lambda message: escape(active().ugettext(message)),
        ngettext=lambda singular, plural, num: escape(active().ungettext(singular, plural, num)),
        newstyle=True,
    )
    app.jinja_env.globals["language"] = current
    app.extensions["templates"] = {}
    app.extensions["compiled_templates"] = {}  # (language, name) -> Template, see template()
    for language in available:
        overlay = app.jinja_env.overlay(
            extensions=[TranslatedWhenCompiled], cache_size=app.jinja_env.cache.capacity
        )
        overlay.extend(compiled_translations=app.extensions["catalogue_of"][language])
        app.extensions["templates"][language] = overlay


def template(name: str, *, app: Flask | None = None, language: str | None = None) -> Template:
    """The template `name` compiled for this request's language (see TranslatedWhenCompiled).
    render_template takes it as it takes a name; anything rendered by name still works, with
    every text looked up as it renders. Kept once found, unless templates reload when changed
    (Jinja's own lookup takes a lock and makes a weak reference each time: every panel comes
    here). `app` and `language`, when the caller holds them, are not looked up again."""
    language = language or current()
    extensions = (app or current_app).extensions
    found = extensions["compiled_templates"].get((language, name))
    if found is None:
        environment = extensions["templates"][language]
        found = environment.get_template(name)
        if not environment.auto_reload:
            extensions["compiled_templates"][(language, name)] = found
    return found


class TranslatedWhenCompiled(Extension):
    """Each `_("literal")` of a template becomes its translation when the template compiles,
    one compiled copy per language, so the panel's texts cost nothing when it renders (Jinja's
    i18n looks each one up, some forty a panel). With values, `_("literal", name=value)`, only
    the filling in is left for the render, and not even that when every value is a literal.
    Anything else (a variable's text, ngettext) is looked up as it renders. Unlike Jinja's
    i18n, a text is text, never markup: it is escaped like any value, so a translator's
    quotation mark is shown as one wherever the text lands, in an attribute too, and a
    tampered catalogue cannot add an attribute or an element (the security review's finding).
    Markup in a text comes only from the template, as a value marked safe."""

    def __init__(self, environment: Environment) -> None:
        super().__init__(environment)
        environment.filters["_filled"] = _filled

    def filter_stream(self, stream: TokenStream) -> Iterator[Token]:
        translations = self.environment.compiled_translations
        tokens = list(stream)
        i = 0
        while i < len(tokens):
            head = tokens[i]
            literal = tokens[i + 2] if i + 2 < len(tokens) else None
            if not (
                head.test("name:_") and tokens[i + 1].test("lparen") and literal.test("string")
            ):
                yield head
                i += 1
                continue
            text = translations.ugettext(literal.value)
            values, end = _literal_values(tokens, i + 3)
            if values is not None:  # no values, or literals only: the text, filled now
                yield from _constant(literal.lineno, _filled(text, **values))
                i = end
            else:  # ("translation"|_filled(name=value, ...)): filled as it renders
                yield tokens[i + 1]  # (
                yield Token(literal.lineno, "string", text)
                yield Token(literal.lineno, "pipe", "|")
                yield Token(literal.lineno, "name", "_filled")
                yield Token(literal.lineno, "lparen", "(")
                i += 4  # past the comma: the values follow, then their `)` closes the filter's
                depth = 1
                while depth:  # copy the values up to that `)`, then close the `(`
                    token = tokens[i]
                    depth += token.type == "lparen"
                    depth -= token.type == "rparen"
                    yield token
                    i += 1
                yield Token(token.lineno, "rparen", ")")


def _literal_values(tokens: list[Token], i: int) -> tuple[dict[str, str] | None, int]:
    """`, name="value", ...)` from tokens[i]: the values and the index past `)`, or None if
    any value is not a plain string literal."""
    values: dict[str, str] = {}
    while tokens[i].test("comma"):
        name, assign, value = tokens[i + 1 : i + 4]
        if not (name.test("name") and assign.test("assign") and value.test("string")):
            return None, i
        if tokens[i + 4].test("pipe"):  # only |safe, as in "<kbd>Esc</kbd>"|safe
            if not tokens[i + 5].test("name:safe"):
                return None, i
            values[name.value] = Markup(value.value)  # noqa: S704 (the template's own literal)
            i += 6
        else:
            values[name.value] = value.value
            i += 4
    return (values, i + 1) if tokens[i].test("rparen") else (None, i)


def _constant(lineno: int, text: Markup) -> Iterator[Token]:
    """A markup constant: Jinja folds `"..."|safe` when it compiles."""
    yield Token(lineno, "string", str(text))
    yield Token(lineno, "pipe", "|")
    yield Token(lineno, "name", "safe")


def _filled(text: str, **values: object) -> Markup:
    # The text and the values are escaped (as Markup's own % would, for a third of its cost);
    # a value the template marked safe stays markup.
    escaped = {name: escape(value) for name, value in values.items()}
    text = str(escape(text))
    return Markup(text % escaped if values else text)  # noqa: S704
