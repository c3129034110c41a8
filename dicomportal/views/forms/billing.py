"""Flask-WTF forms for subscribing and paying.

The billing details form is what invoices are addressed to. The card and 3-D Secure forms carry
Stripe ids only: the card number is typed into Stripe.js and goes to Stripe, never to us.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, SelectField, StringField
from wtforms.validators import InputRequired, Length, Optional, Regexp, ValidationError

from dicomportal.billing import profiles
from dicomportal.billing.profiles import BillingDetails
from dicomportal.billing.tax import normalized_tax_id
from dicomportal.models.types import MAX_ID


def country_choices() -> list[tuple[str, str]]:
    """The countries for the country <select>."""
    return profiles.countries()


class BillingDetailsForm(FlaskForm):
    """Who the invoices are addressed to (step 1 of subscribing)."""

    name = StringField(
        "Full name",
        validators=[InputRequired("Enter the name to put on your invoices."), Length(max=200)],
        render_kw={"autocomplete": "name"},
    )
    company = StringField(
        "Company (optional)",
        validators=[Optional(), Length(max=200)],
        render_kw={"autocomplete": "organization"},
    )
    address_line1 = StringField(
        "Address",
        validators=[InputRequired("Enter your street address."), Length(max=200)],
        render_kw={"autocomplete": "address-line1"},
    )
    address_line2 = StringField(
        "Apartment, suite, unit (optional)",
        validators=[Optional(), Length(max=200)],
        render_kw={"autocomplete": "address-line2"},
    )
    city = StringField(
        "City or town",
        validators=[InputRequired("Enter your city or town."), Length(max=100)],
        render_kw={"autocomplete": "address-level2"},
    )
    state = StringField(
        "State, province or region (optional)",
        validators=[Optional(), Length(max=100)],
        render_kw={"autocomplete": "address-level1"},
    )
    postal_code = StringField(
        "Postal code", validators=[Length(max=20)], render_kw={"autocomplete": "postal-code"}
    )
    country = SelectField(
        "Country",
        choices=lambda: [("", "Choose your country"), *country_choices()],
        validators=[InputRequired("Choose your country.")],
        invalid_choice_message="Choose your country from the list.",
        render_kw={"autocomplete": "country"},
    )
    tax_id = StringField(
        "VAT or tax ID (optional)",
        validators=[Optional(), Length(max=50)],
        description=(
            "For businesses: printed on your invoices. EU, UK, Swiss, US, Canadian and Australian "
            "numbers are checked."
        ),
        render_kw={"spellcheck": "false"},
    )

    def details(self) -> BillingDetails:
        """The validated fields as the billing service takes them (blank optional fields: None)."""
        return BillingDetails(
            name=self.name.data,
            address_line1=self.address_line1.data,
            city=self.city.data,
            country=self.country.data,
            company=self.company.data or None,
            address_line2=self.address_line2.data or None,
            state=self.state.data or None,
            postal_code=self.postal_code.data or None,
            tax_id=self.tax_id.data or None,
        )

    def validate_postal_code(self, field: Field) -> None:
        field.data = (field.data or "").strip().upper()
        problem = profiles.postal_code_problem(self.country.data or "", field.data)
        if problem:
            raise ValidationError(problem)

    def validate_tax_id(self, field: Field) -> None:
        field.data = (field.data or "").strip()
        if field.data and self.country.data:
            try:
                field.data = normalized_tax_id(self.country.data, field.data)
            except ValueError as exc:
                raise ValidationError(str(exc)) from exc


class CardSetupForm(FlaskForm):
    """The card step's POST: only the id of the SetupIntent that Stripe.js confirmed."""

    setup_intent_id = HiddenField(validators=[InputRequired(), Length(max=255), Regexp(r"^seti_\w+$")])


class AuthenticationForm(FlaskForm):
    """After Stripe.js's 3-D Secure dialog: which of the customer's payments to look at again."""

    payment_id = HiddenField(validators=[InputRequired(), Regexp(r"^\d{1,10}$")])

    def validate_payment_id(self, field: Field) -> None:
        if not field.errors and int(field.data) > MAX_ID:  # the digits were checked first
            raise ValidationError("Not one of your payments.")
