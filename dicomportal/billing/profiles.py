"""Billing details: who invoices are addressed to, kept in step with Stripe's copy of the customer."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass

from dicomportal.billing import audit, gateway, tax
from dicomportal.billing.errors import GatewayUnavailable
from dicomportal.extensions import db
from dicomportal.models import BillingProfile, User

log = logging.getLogger(__name__)


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
