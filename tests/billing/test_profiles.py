"""Billing details: ours are what invoices use; Stripe's copy of the customer follows them."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from dicomportal.billing import cards, profiles
from dicomportal.billing.profiles import BillingDetails
from dicomportal.models import User
from tests.helpers.stripe import stripe_client

DETAILS = BillingDetails(
    name="Dr Ada Byte",
    company="Byte Radiology GmbH",
    address_line1="Hauptstrasse 1",
    city="Berlin",
    postal_code="10115",
    country="DE",
    tax_id="DE136695976",
)


def test_saving_billing_details_updates_stripes_copy_of_the_customer(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    cards.ensure_customer(user)

    profile = profiles.save_billing_details(user, DETAILS)

    assert profile.tax_id_type == "eu_vat" and profile.company == "Byte Radiology GmbH"
    customer = stripe_client(app).v1.customers.retrieve(user.stripe_customer_id)
    assert customer.individual_name == "Dr Ada Byte" and customer.name == "Byte Radiology GmbH"
    assert customer.address.city == "Berlin" and customer.address.country == "DE"


def test_a_changed_tax_id_must_be_verified_again(app: Flask, make_customer: Callable[..., User]) -> None:
    from dicomportal import clock

    user = make_customer()
    profile = profiles.save_billing_details(user, DETAILS)
    profile.tax_id_verified_at = clock.now()

    same = profiles.save_billing_details(user, DETAILS)
    assert same.tax_id_verified_at is not None
    changed = profiles.save_billing_details(
        user, BillingDetails(**{**DETAILS.__dict__, "tax_id": "DE129273398"})
    )
    assert changed.tax_id == "DE129273398" and changed.tax_id_verified_at is None
