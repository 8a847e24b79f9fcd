"""The disposition form, its validation in the agent's words, and cookie-less CSRF."""

from __future__ import annotations

import hashlib
import hmac
import re
import unicodedata
from collections.abc import Callable, Collection
from datetime import datetime

from flask_babel import lazy_gettext
from flask_wtf import FlaskForm
from wtforms import BooleanField, Field, StringField, TextAreaField
from wtforms.csrf.core import CSRF
from wtforms.validators import InputRequired, Length, ValidationError

from ..cloudagent import DISPOSITION_MAX
from ..i18n import gettext as _
from ..i18n import gettext as in_agents_language  # a text marked where it was made
from .callbacks import CallbackRule, CallbackTimeError

COMMENTS_MAX = 500
# Characters CloudAgent is sent in free text: anything printable, plus line breaks and tabs.
_UNPRINTABLE = re.compile(r"[^\t\n\r\x20-\x7e\xa0-\U0010ffff]|[\u2028\u2029\ufeff\ufffe\uffff]")
# A one-line value (a disposition name): no line break or tab either.
_NOT_ONE_LINE = re.compile(r"[^\x20-\x7e\xa0-\U0010ffff]|[\u2028\u2029\ufeff\ufffe\uffff]")


def _has_format_character(text: str) -> bool:
    """Whether `text` holds an invisible format character (Unicode category Cf): zero-width
    spaces and joiners, direction marks and overrides, the BOM, soft hyphens."""
    return any(unicodedata.category(char) == "Cf" for char in text)


def _printable(
    message: object, pattern: re.Pattern[str] = _UNPRINTABLE
) -> Callable[[object, Field], None]:
    def check(form: object, field: Field) -> None:
        if field.data and pattern.search(field.data):
            raise ValidationError(message)

    return check


def csrf_token_for(context: str, secret: str | bytes) -> str:
    """The CSRF token of a panel: an HMAC of its context token."""
    key = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(key, b"csrf\0" + context.encode(), hashlib.sha256).hexdigest()


def csrf_matches(given: object, context: str, secret: str | bytes) -> bool:
    """Whether a posted CSRF token is the one of this context."""
    if not context or not isinstance(given, str):
        return False
    return hmac.compare_digest(given.encode(), csrf_token_for(context, secret).encode())


class ContextCSRF(CSRF):
    """CSRF token = HMAC(secret, the page's context token): no session needed.

    A token only validates with the context it was issued for, and the context itself is
    signed and time-limited, so a token from another panel, another call or a forged page fails.
    """

    def setup_form(self, form: FlaskForm) -> list:
        self.context = str(form.meta.csrf_context or "")
        self.secret = form.meta.csrf_secret
        return super().setup_form(form)

    def _expected(self) -> str:
        return csrf_token_for(self.context, self.secret)

    def generate_csrf_token(self, csrf_token_field: object) -> str:
        return self._expected()

    def validate_csrf_token(self, form: FlaskForm, field: object) -> None:
        given = getattr(field, "data", None)
        if not self.context or not isinstance(given, str):
            raise ValidationError("missing")  # for the log only: the agent reads another text
        if not hmac.compare_digest(given.encode(), self._expected().encode()):
            raise ValidationError("wrong")


class DispositionForm(FlaskForm):
    class Meta:
        csrf_class = ContextCSRF

    # Text fields: the page renders the selects itself; here only the posted values matter.
    disposition = StringField(
        "Disposition",
        validators=[
            InputRequired(lazy_gettext("Choose a disposition.")),
            Length(max=DISPOSITION_MAX, message=lazy_gettext("That disposition name is too long.")),
            _printable(lazy_gettext("Choose a disposition from the list."), _NOT_ONE_LINE),
        ],
    )
    callback_time = StringField("Callback time")
    comments = TextAreaField(
        "Comments",
        validators=[
            Length(
                max=COMMENTS_MAX,
                message=lazy_gettext(
                    "Comments can be at most %(max)s characters.", max=COMMENTS_MAX
                ),
            ),
            _printable(
                lazy_gettext(
                    "Comments contain a control character that cannot be saved; remove it."
                )
            ),
        ],
    )
    pause = BooleanField("Pause after this call")
    pause_reason = StringField("Pause reason")

    def __init__(
        self,
        *args: object,
        dispositions: Collection[str] | None,
        pause_reasons: Collection[str],
        callbacks: CallbackRule,
        **kwargs: object,
    ) -> None:
        super().__init__(*args, **kwargs)
        # None: the list could not be loaded; CloudAgent then judges the name on its own.
        # (frozenset() of a frozenset is that same set: the view passes the list's, made once.)
        self.known = None if dispositions is None else frozenset(dispositions)
        self.reasons = frozenset(pause_reasons)
        self.callbacks = callbacks
        self.callback_at: datetime | None = None  # set when the disposition needs one

    @property
    def callback_upstream(self) -> str:
        """callBackTime as CloudAgent takes it, or "" when the disposition has no callback."""
        return self.callbacks.upstream(self.callback_at) if self.callback_at else ""

    def validate_disposition(self, field: StringField) -> None:
        if self.known is not None and field.data not in self.known:
            raise ValidationError(_("Choose a disposition from the list."))
        if self.known is None and _has_format_character(field.data or ""):
            # Free text (the list is down): a zero-width or direction mark would make a name
            # that looks like a real one but is not, in CloudAgent and in the audit trail.
            raise ValidationError(
                _(
                    "That disposition name contains an invisible character (such as a "
                    "zero-width space). Type it again without it."
                )
            )

    def validate_callback_time(self, field: StringField) -> None:
        if not self.callbacks.applies_to(self.disposition.data or ""):
            field.data = ""  # never sent for a disposition without callbacks
            return
        if not (field.data or "").strip():
            raise ValidationError(_("Choose a callback time for this disposition."))
        try:
            self.callback_at = self.callbacks.read(field.data)
        except CallbackTimeError as error:
            raise ValidationError(in_agents_language(error.message)) from None

    def validate_pause_reason(self, field: StringField) -> None:
        if not self.pause.data:
            field.data = ""  # ignored unless pausing
            return
        if not field.data:
            raise ValidationError(_("Choose a pause reason, or untick Pause after this call."))
        if field.data not in self.reasons:
            raise ValidationError(_("Choose a pause reason from the list."))
