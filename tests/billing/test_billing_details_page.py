"""The billing details page: tax IDs checked by country, errors in place, Stripe's copy kept in step,
and only invoices issued afterwards addressed to the new details."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.billing.invoicing import LineSpec, create_invoice, finalize
from dicomportal.billing.summary import first_invoice
from dicomportal.extensions import db
from dicomportal.models import BillingReason, LineKind, Subscription, User
from tests.helpers.auth import AuthActions
from tests.helpers.stripe import stripe_client

PASSWORD = "correct horse battery"
FORM = {
    "name": "Ada Byte",
    "company": "Byte Imaging Ltd",
    "address_line1": "10 Downing Street",
    "city": "London",
    "postal_code": "SW1A 2AA",
    "country": "GB",
    "tax_id": "",
}


def text_of(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


@pytest.mark.parametrize(
    ("country", "postal_code", "typed", "stored", "kind"),
    [
        ("FR", "75011", "40 303 265 045", "FR40303265045", "eu_vat"),
        ("GB", "SW1A 2AA", "980 7806 84", "GB980780684", "gb_vat"),
        ("CH", "8001", "CHE100155212", "CHE-100.155.212", "ch_uid"),
        ("US", "62701", "042103594", "04-2103594", "us_ein"),
        ("CA", "K1A 0B1", "123456782", "123456782", "ca_bn"),
        ("AU", "2000", "83914571673", "83 914 571 673", "au_abn"),
    ],
)
def test_a_valid_tax_id_is_saved_in_its_standard_form(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    country: str,
    postal_code: str,
    typed: str,
    stored: str,
    kind: str,
) -> None:
    user = make_customer()
    auth.login(user.email, PASSWORD)

    response = client.post(
        "/billing/details", data=FORM | {"country": country, "postal_code": postal_code, "tax_id": typed}
    )

    assert response.status_code == 303, text_of(response)
    db.session.expire_all()
    profile = user.billing_profile
    assert profile is not None and (profile.tax_id, profile.tax_id_type, profile.country) == (
        stored,
        kind,
        country,
    )


@pytest.mark.parametrize(
    ("country", "postal_code", "typed", "message"),
    [
        ("DE", "10115", "DE123", "Enter a valid EU VAT number"),
        ("FR", "75011", "DE136695976", "another country than your billing address"),
        ("GB", "SW1A 2AA", "GB123", "Enter a valid UK VAT number"),
        ("CH", "8001", "CHE-123.456.789", "Enter a valid Swiss UID"),
        ("US", "62701", "00-1234567", "Enter a valid US EIN"),
        ("CA", "K1A 0B1", "123456789", "Enter a valid Canadian business number"),
        ("AU", "2000", "12345678901", "Enter a valid Australian ABN"),
    ],
)
def test_an_invalid_tax_id_is_explained_in_place_and_nothing_is_saved(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    country: str,
    postal_code: str,
    typed: str,
    message: str,
) -> None:
    user = make_customer()
    auth.login(user.email, PASSWORD)

    response = client.post(
        "/billing/details",
        data=FORM | {"country": country, "postal_code": postal_code, "tax_id": typed},
        headers={"HX-Request": "true"},
    )

    assert response.status_code == 422
    markup = response.get_data(as_text=True)
    assert markup.lstrip().startswith('<form id="billing-details-form"') and "<html" not in markup
    assert message in text_of(response) and 'id="tax_id-error"' in markup
    db.session.expire_all()
    profile = user.billing_profile
    assert profile is not None and (profile.name, profile.country, profile.tax_id) == (
        "Casey Customer",
        "US",
        None,
    )


def test_new_details_reach_stripe_and_only_later_invoices(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    subscription = subscribe(user)
    before = first_invoice(subscription)
    assert before is not None
    auth.login(user.email, PASSWORD)
    page = client.get("/billing/details")
    assert 'value="Casey Customer"' in page.get_data(as_text=True)

    response = client.post("/billing/details", data=FORM | {"tax_id": "GB980780684"})

    assert response.status_code == 303
    customer = stripe_client(app).v1.customers.retrieve(user.stripe_customer_id or "")
    # A company's name is the customer's name at Stripe; the person is its individual_name.
    assert (customer.name, customer.email) == ("Byte Imaging Ltd", user.email)
    assert customer.to_dict().get("individual_name") == "Ada Byte"
    assert (customer.address.line1, customer.address.city, customer.address.country) == (
        "10 Downing Street",
        "London",
        "GB",
    )
    db.session.refresh(before)
    assert (before.billing_name, before.billing_tax_id) == ("Casey Customer", None)
    # The next invoice is addressed to the new details.
    later = create_invoice(user, [LineSpec(LineKind.PLAN, "Professional", 2900)], BillingReason.MANUAL)
    finalize(later, app.config)
    assert (later.billing_name, later.billing_company, later.billing_tax_id) == (
        "Ada Byte",
        "Byte Imaging Ltd",
        "GB980780684",
    )


def test_a_changed_tax_id_is_checked_at_once_and_only_it_is_judged(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    auth.login(user.email, PASSWORD)
    half_filled = FORM | {"city": "", "tax_id": "GB123", "check": "tax_id"}

    wrong = client.post("/billing/details", data=half_filled, headers={"HX-Request": "true"})
    right = client.post(
        "/billing/details", data=half_filled | {"tax_id": "GB980780684"}, headers={"HX-Request": "true"}
    )

    assert wrong.status_code == 422 and "Enter a valid UK VAT number" in text_of(wrong)
    assert "Enter your city or town" not in text_of(wrong)  # not reached yet: not judged
    assert right.status_code == 200 and 'id="tax_id-error"' not in right.get_data(as_text=True)
    db.session.expire_all()
    assert user.billing_profile is not None and user.billing_profile.tax_id is None  # nothing saved
    page = client.get("/billing/details").get_data(as_text=True)
    assert 'hx-trigger="change"' in page and "&#34;check&#34;: &#34;tax_id&#34;" in page
