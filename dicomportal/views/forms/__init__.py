"""Flask-WTF forms, one module per area (``accounts``, ``billing``), and the helpers every form
view uses: a validator from a service check, a service error shown on its field, and a form page
answered 422 when it comes back with errors."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import render_template
from flask_wtf import FlaskForm
from wtforms import Field
from wtforms.validators import ValidationError

from dicomportal.accounts import AccountError


def service_rule(check: Callable[[str], object]) -> Callable[[FlaskForm, Field], None]:
    """A WTForms validator from a service check that raises :class:`AccountError`."""

    def validate(_form: FlaskForm, field: Field) -> None:
        try:
            check(field.data or "")
        except AccountError as exc:
            raise ValidationError(str(exc)) from exc

    return validate


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
