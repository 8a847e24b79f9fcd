"""The catalogues are complete: every text the code and templates mark is in messages.pot and
translated in every language, with the same placeholders."""

import pytest
from babel.messages.catalog import Catalog

from tests.helpers import ROOT, catalogue_problems, marked_texts, read_catalogue
from webapp.i18n import catalogue_paths

TRANSLATIONS = ROOT / "translations"
LANGUAGES = catalogue_paths(TRANSLATIONS)


def test_hindi_is_one_of_the_languages():
    assert "hi" in LANGUAGES


def test_the_template_holds_every_marked_text():
    expected = marked_texts()
    assert len(expected) > 90  # the extraction found the panel's texts at all
    template = {m.id for m in read_catalogue(TRANSLATIONS / "messages.pot") if m.id}
    assert template == expected, "run `make translations`"


@pytest.mark.parametrize("language", sorted(LANGUAGES))
def test_every_text_is_translated_with_its_placeholders(language):
    catalogue = read_catalogue(LANGUAGES[language], language)
    assert catalogue.locale and str(catalogue.locale) == language
    assert catalogue_problems(catalogue, marked_texts()) == []


def test_the_check_catches_a_missing_translation_and_a_dropped_placeholder():
    catalogue = Catalog(locale="hi")
    catalogue.add("Comments can be at most %(max)s characters.", "टिप्पणियाँ बहुत लंबी हैं।")
    catalogue.add("Try again", "")
    catalogue.add("Saved", "सेव हो गया", flags=["fuzzy"])
    found = catalogue_problems(
        catalogue, {"Try again", "Saved", "Comments can be at most %(max)s characters."}
    )
    assert any(p.startswith("placeholders differ") for p in found)
    assert "not translated: 'Try again'" in found and "not translated: 'Saved'" in found
    assert catalogue_problems(catalogue, {"Saved"})[0].startswith("no longer in the code")
    shown_as_is = Catalog(locale="hi")
    shown_as_is.add("Saved", "100% सेव")
    shown_as_is.add("Queued", "<b>लंबित</b>")
    shown_as_is.add(("%(num)s second left.", "%(num)s seconds left."), ("%(num)s सेकंड", ""))
    found = catalogue_problems(
        shown_as_is, {"Saved", "Queued", ("%(num)s second left.", "%(num)s seconds left.")}
    )
    assert "a % that is not a placeholder: '100% सेव'" in found
    assert "markup the English does not have: '<b>लंबित</b>'" in found
    assert any(p.startswith("not translated: ('%(num)s second left.'") for p in found)
    empty = Catalog(locale="hi")
    assert "not in the catalogue: 'New text'" in catalogue_problems(empty, {"New text"})
