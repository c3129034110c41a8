"""Flask-WTF forms for accounts, and the two helpers every form view uses.

Field rules call the same checks as the services (``normalise_email``,
``check_password_strength``), so the page and the service can never disagree on a message.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import render_template
from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, Field, HiddenField, PasswordField, StringField
from wtforms.validators import InputRequired, Length, ValidationError

from dicomportal.accounts import MIN_PASSWORD_LENGTH, AccountError, check_password_strength, normalise_email


def service_rule(check: Callable[[str], object]) -> Callable[[FlaskForm, Field], None]:
    """A WTForms validator from a service check that raises :class:`AccountError`."""

    def validate(_form: FlaskForm, field: Field) -> None:
        try:
            check(field.data or "")
        except AccountError as exc:
            raise ValidationError(str(exc)) from exc

    return validate


def _email_field(autocomplete: str) -> EmailField:
    return EmailField(
        "Email",
        validators=[InputRequired("Enter your email address."), service_rule(normalise_email)],
        render_kw={"autocomplete": autocomplete, "spellcheck": "false"},
    )


def _new_password_field(label: str) -> PasswordField:
    return PasswordField(
        label,
        validators=[InputRequired("Choose a password."), service_rule(check_password_strength)],
        description=f"At least {MIN_PASSWORD_LENGTH} characters. A short sentence works well.",
        render_kw={"autocomplete": "new-password", "minlength": MIN_PASSWORD_LENGTH},
    )


class LoginForm(FlaskForm):
    email = EmailField(
        "Email",
        validators=[InputRequired("Enter your email address.")],
        render_kw={"autocomplete": "username", "spellcheck": "false"},
    )
    password = PasswordField(
        "Password",
        validators=[InputRequired("Enter your password.")],
        render_kw={"autocomplete": "current-password"},
    )
    remember = BooleanField("Keep me logged in on this device")
    next = HiddenField()


class SignupForm(FlaskForm):
    name = StringField(
        "Your name",
        validators=[InputRequired("Please tell us your name."), Length(max=200)],
        render_kw={"autocomplete": "name"},
    )
    email = _email_field("email")
    password = _new_password_field("Password")
    next = HiddenField()


class ForgotPasswordForm(FlaskForm):
    email = _email_field("email")


class ResetPasswordForm(FlaskForm):
    password = _new_password_field("New password")


class ChangePasswordForm(FlaskForm):
    current_password = PasswordField(
        "Current password",
        validators=[InputRequired("Enter your current password.")],
        render_kw={"autocomplete": "current-password"},
    )
    password = _new_password_field("New password")


def show_error(form: FlaskForm, error: AccountError) -> None:
    """Put a service's message on the field it names, or on the form as a whole."""
    field = form._fields.get(error.field) if error.field else None
    if field is not None:
        field.errors = [*field.errors, str(error)]
    else:
        form.form_errors.append(str(error))


def render_form(template: str, form: FlaskForm, **context: Any) -> tuple[str, int]:
    """Render a form page: 200, or 422 when it is shown again with errors."""
    has_errors = bool(form.form_errors) or any(field.errors for field in form)
    return render_template(template, form=form, **context), 422 if has_errors else 200
