"""Forms for managing a subscription: choosing a plan, cancelling with a reason, and the
one-button confirmations (their CSRF token is the whole form)."""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import IntegerField, SelectField, TextAreaField
from wtforms.fields.choices import SelectChoice
from wtforms.validators import InputRequired, Length, NumberRange, Optional

from dicomportal.billing.cancellation import NOTE_MAX, REASONS
from dicomportal.models.types import MAX_ID


class ConfirmForm(FlaskForm):
    """A button that changes something: only the CSRF token."""


class ChangePlanForm(FlaskForm):
    price_id = IntegerField(validators=[InputRequired(), NumberRange(1, MAX_ID)])
    # The total the customer saw in the preview; if it no longer holds, nothing is charged.
    seen_total = IntegerField(validators=[Optional(), NumberRange(-(10**9), 10**9)])


class CancelForm(FlaskForm):
    reason = SelectField(
        "Why are you cancelling? (optional)",
        choices=[SelectChoice("", "Choose a reason"), *(SelectChoice(v, label) for v, label in REASONS)],
        validators=[Optional()],
    )
    note = TextAreaField(
        "Anything you'd like to tell us? (optional)", validators=[Optional(), Length(max=NOTE_MAX)]
    )
