"""Flask-WTF forms for subscribing and paying.

The billing details form is what invoices are addressed to. The card and 3-D Secure forms carry
Stripe ids only: the card number is typed into Stripe.js and goes to Stripe, never to us.
"""

from __future__ import annotations

from functools import cache

from babel import Locale
from flask_wtf import FlaskForm
from wtforms import Field, HiddenField, SelectField, StringField
from wtforms.validators import InputRequired, Length, Optional, Regexp, ValidationError

from dicomportal.billing.tax import eu_vat_number, is_eu_country
from dicomportal.models.types import MAX_ID

# Codes CLDR lists among territories that are not ISO 3166-1 countries (regions, unions, test
# locales), so they are not offered as a billing country.
NOT_COUNTRIES = frozenset(
    {"AC", "CP", "CQ", "DG", "EA", "EU", "EZ", "IC", "QO", "TA", "UN", "XA", "XB", "ZZ"}
)

# Countries whose postal addresses have no postal code: the field is optional there.
NO_POSTAL_CODE = frozenset(
    {
        "AE", "AG", "AO", "AW", "BF", "BI", "BJ", "BO", "BS", "BW", "BZ", "CD", "CF", "CG", "CI", "CK",
        "CM", "DJ", "DM", "ER", "FJ", "GA", "GD", "GH", "GM", "GQ", "GY", "HK", "JM", "KI", "KM", "KN",
        "KP", "LY", "MO", "ML", "MR", "MW", "NR", "NU", "QA", "RW", "SB", "SC", "SL", "SR", "SS", "ST",
        "SY", "TD", "TF", "TG", "TK", "TL", "TO", "TV", "UG", "VU", "YE", "ZW",
    }
)  # fmt: skip


@cache
def country_choices() -> list[tuple[str, str]]:
    """ISO 3166 countries as (2-letter code, English name), sorted by name, for the country <select>."""
    territories = Locale("en").territories
    countries = [
        (code, name)
        for code, name in territories.items()
        if len(code) == 2 and code.isalpha() and code not in NOT_COUNTRIES
    ]
    return sorted(countries, key=lambda item: item[1])


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
        description="For businesses: printed on your invoices. EU VAT numbers are checked.",
        render_kw={"spellcheck": "false"},
    )

    def validate_postal_code(self, field: Field) -> None:
        field.data = (field.data or "").strip()
        if not field.data and self.country.data not in NO_POSTAL_CODE:
            raise ValidationError("Enter your postal code.")

    def validate_tax_id(self, field: Field) -> None:
        field.data = (field.data or "").strip()
        if field.data and is_eu_country(self.country.data or ""):
            try:
                field.data = eu_vat_number(self.country.data, field.data)
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
