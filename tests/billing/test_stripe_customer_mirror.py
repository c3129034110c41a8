"""Billing details mirrored to the Stripe customer: the company and the one tax ID, kept in step
when they change, and copied by the worker when Stripe was down or refused at saving."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import timedelta

import time_machine
from flask import Flask

from dicomportal import clock, jobs
from dicomportal.billing import cards, profiles
from dicomportal.billing.profiles import BillingDetails
from dicomportal.devtools.stripe_server import free_port
from dicomportal.extensions import db
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


def tax_ids_at_stripe(app: Flask, user: User) -> list[tuple[str, str]]:
    assert user.stripe_customer_id
    found = stripe_client(app).v1.customers.tax_ids.list(user.stripe_customer_id)
    return [(tax_id.type, tax_id.value) for tax_id in found.auto_paging_iter()]


@contextmanager
def stripe_down(app: Flask) -> Iterator[None]:
    """Nothing answers where the app looks for Stripe (connection refused)."""
    real = app.config["STRIPE_API_BASE"]
    app.config["STRIPE_API_BASE"] = f"http://127.0.0.1:{free_port()}"
    app.extensions.pop("stripe_client", None)
    try:
        yield
    finally:
        app.config["STRIPE_API_BASE"] = real
        app.extensions.pop("stripe_client", None)


def mirror_pass() -> dict[str, int]:
    return dict(jobs.run_once()["mirror_billing_details"])


def test_a_saved_vat_number_and_company_are_on_the_stripe_customer(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    cards.ensure_customer(user)

    profile = profiles.save_billing_details(user, DETAILS)

    customer = stripe_client(app).v1.customers.retrieve(user.stripe_customer_id).to_dict()
    assert customer["business_name"] == "Byte Radiology GmbH"
    assert customer["individual_name"] == "Dr Ada Byte"
    assert customer["name"] == "Byte Radiology GmbH"
    assert tax_ids_at_stripe(app, user) == [("eu_vat", "DE136695976")]
    assert not profile.stripe_mirror_due and profile.stripe_mirror_error is None


def test_saving_the_same_details_twice_leaves_one_tax_id_at_stripe(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    cards.ensure_customer(user)

    profiles.save_billing_details(user, DETAILS)
    profiles.save_billing_details(user, DETAILS)

    assert tax_ids_at_stripe(app, user) == [("eu_vat", "DE136695976")]


def test_a_changed_vat_number_replaces_the_old_one_at_stripe(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    cards.ensure_customer(user)
    first = profiles.save_billing_details(user, DETAILS).stripe_tax_id

    changed = profiles.save_billing_details(user, replace(DETAILS, tax_id="DE129273398"))

    assert tax_ids_at_stripe(app, user) == [("eu_vat", "DE129273398")]
    assert changed.stripe_tax_id not in (None, first)


def test_a_cleared_tax_id_and_company_leave_none_at_stripe(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    cards.ensure_customer(user)
    profiles.save_billing_details(user, DETAILS)

    cleared = profiles.save_billing_details(user, replace(DETAILS, company=None, tax_id=None))

    assert tax_ids_at_stripe(app, user) == []
    customer = stripe_client(app).v1.customers.retrieve(user.stripe_customer_id).to_dict()
    assert customer["business_name"] is None and customer["name"] == "Dr Ada Byte"
    assert cleared.stripe_tax_id is None and not cleared.stripe_mirror_due


def test_stripe_down_while_saving_keeps_the_details_and_the_next_worker_pass_copies_them(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    cards.ensure_customer(user)
    with stripe_down(app):
        profile = profiles.save_billing_details(user, DETAILS)
        assert mirror_pass() == {"deferred": 1}  # still down: tried, nothing lost

    assert profile.company == "Byte Radiology GmbH" and profile.tax_id == "DE136695976"
    assert profile.stripe_mirror_due and "unavailable" in (profile.stripe_mirror_error or "")
    assert tax_ids_at_stripe(app, user) == []

    assert mirror_pass() == {"mirrored": 1}
    assert tax_ids_at_stripe(app, user) == [("eu_vat", "DE136695976")]
    customer = stripe_client(app).v1.customers.retrieve(user.stripe_customer_id).to_dict()
    assert customer["business_name"] == "Byte Radiology GmbH"
    db.session.refresh(profile)
    assert not profile.stripe_mirror_due and profile.stripe_mirror_error is None
    assert mirror_pass() == {}  # done: nothing left to copy


def test_a_tax_id_stripe_refuses_is_recorded_and_retried_not_lost(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    # localstripe accepts only eu_vat, nz_gst, au_abn and es_cif; real Stripe takes gb_vat.
    user = make_customer(country="GB")
    cards.ensure_customer(user)
    uk = replace(DETAILS, country="GB", city="London", postal_code="SW1A 1AA", tax_id="GB980780684")

    profile = profiles.save_billing_details(user, uk)

    assert profile.tax_id == "GB980780684" and profile.tax_id_type == "gb_vat"
    assert profile.stripe_mirror_due and profile.stripe_mirror_error
    customer = stripe_client(app).v1.customers.retrieve(user.stripe_customer_id).to_dict()
    assert customer["business_name"] == "Byte Radiology GmbH"  # the rest of the copy was made
    assert mirror_pass() == {"errors": 1}  # the worker tried again
    with time_machine.travel(clock.now() + timedelta(minutes=2), tick=False):
        assert mirror_pass() == {"errors": 1}  # and again after its backoff
    db.session.refresh(profile)
    assert profile.stripe_mirror_due and profile.tax_id == "GB980780684"


def test_details_saved_before_there_is_a_stripe_customer_are_copied_once_there_is_one(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    profiles.save_billing_details(user, DETAILS)
    assert mirror_pass() == {}  # no Stripe customer yet: nothing to copy to

    cards.ensure_customer(user)  # the first card setup creates it
    assert mirror_pass() == {"mirrored": 1}
    assert tax_ids_at_stripe(app, user) == [("eu_vat", "DE136695976")]
