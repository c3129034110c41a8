"""Forms for signing up, logging in and passwords.

Field rules call the same checks as the services (``normalise_email``, ``check_password_strength``)
through :func:`service_rule`, so the page and the service can never disagree on a message.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, EmailField, HiddenField, PasswordField, StringField
from wtforms.validators import InputRequired, Length

from dicomportal.accounts import MIN_PASSWORD_LENGTH, check_password_strength, normalise_email
from dicomportal.views.forms import service_rule


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
