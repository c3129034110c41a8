"""Invoice and credit-note PDFs as customers download them: the seller in Germany, the buyer as
finalized, taxes by who the buyer is, stored once and served byte for byte."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import facturx
import pytest
from babel.dates import format_date
from flask import Flask
from flask.testing import FlaskClient
from lxml import etree

from dicomportal.billing import changes, refunds
from dicomportal.billing.invoicing import invoices_for
from dicomportal.billing.profiles import BillingDetails, save_billing_details
from dicomportal.billing.summary import first_invoice
from dicomportal.billing.tax import tax_for
from dicomportal.documents import REVERSE_CHARGE_MENTION
from dicomportal.extensions import db
from dicomportal.models import BillingProfile, Invoice, Subscription, User
from tests.documents.test_facturx import business_rule_errors
from tests.helpers.auth import AuthActions
from tests.helpers.pdf import pdf_text
from tests.helpers.stripe import price_id

PASSWORD = "correct horse battery"


@pytest.fixture
def app_config(app_config: dict[str, Any]) -> dict[str, Any]:
    """The seller is a German company; France and Germany have their VAT rates configured."""
    return {
        **app_config,
        "SELLER_NAME": "DICOM Portal GmbH",
        "SELLER_ADDRESS": "Friedrichstraße 123, 10117 Berlin",
        "SELLER_COUNTRY": "DE",
        "SELLER_VAT_NUMBER": "DE136695976",
        "TAX_RATES": {"DE": 1900, "FR": 2000},
    }


def subscribed(
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    country: str = "US",
    tax_id: str | None = None,
    company: str | None = None,
    email: str | None = None,
) -> Invoice:
    user = make_customer(email=email, country=country, tax_id=tax_id)
    assert user.billing_profile is not None
    user.billing_profile.company = company
    db.session.commit()
    invoice = first_invoice(subscribe(user))
    assert invoice is not None
    return invoice


def usd(cents: int) -> str:
    """As documents print amounts: $1,234.50."""
    return f"${cents / 100:,.2f}"


def download(client: FlaskClient, invoice: Invoice, **headers: str) -> Any:
    return client.get(f"/billing/invoices/{invoice.id}/pdf", headers=headers)


@pytest.mark.parametrize(
    ("country", "tax_id", "company", "tax_row", "mention"),
    [
        ("FR", "FR40303265045", "Clinique du Parc SAS", "Reverse charge 0%", REVERSE_CHARGE_MENTION),
        ("FR", None, None, "VAT 20%", None),
        ("DE", "DE811907980", "Radiologie am See GmbH", "VAT 19%", None),
        (
            "US",
            "12-3456789",
            "Lakeside Imaging LLC",
            "Not subject to EU VAT 0%",
            "place of supply outside the EU",
        ),
    ],
    ids=["french-company-reverse-charge", "french-consumer", "german-company", "us-customer"],
)
def test_seller_in_germany_taxes_each_buyer_as_the_law_says(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    country: str,
    tax_id: str | None,
    company: str | None,
    tax_row: str,
    mention: str | None,
    tmp_path: Path,
) -> None:
    invoice = subscribed(make_customer, subscribe, country, tax_id, company)
    rate = {"VAT 20%": 2000, "VAT 19%": 1900}.get(tax_row, 0)
    assert invoice.tax_rate_bp == rate
    auth.login(invoice.user.email, PASSWORD)

    response = download(client, invoice)

    assert response.status_code == 200 and response.mimetype == "application/pdf"
    text = pdf_text(response.data)
    assert f"{tax_row} {usd(invoice.subtotal_cents)} {usd(invoice.tax_cents)}" in text
    assert f"Total {usd(invoice.total_cents)}" in text
    assert "DICOM Portal GmbH" in text and "Friedrichstraße 123" in text and "VAT DE136695976" in text
    assert invoice.number in text and "Casey Customer" in text and "1 Main St" in text
    assert "Professional" in text and "Visa •••• 4242" in text
    # Dates (issue, service period, due, paid), the line with quantity and unit price, the status.
    day = format_date(invoice.finalized_at, "medium", locale="en") if invoice.finalized_at else "?"
    assert f"Issue date {day}" in text and f"Due date {day}" in text and f"Paid on {day}" in text
    assert "Service period" in text
    line_rate = f"{rate // 100}%" if rate else "0%"
    assert f" 1 {usd(invoice.subtotal_cents)} {line_rate} {usd(invoice.subtotal_cents)}" in text
    assert "PAID" in text and "Amount due $0.00" in text
    if company:
        assert company in text
    if tax_id:
        assert tax_id in text
    if mention:
        assert mention in text
    else:
        assert "Reverse charge" not in text
    # The Factur-X XML that accounting software reads passes the XSD and the EN 16931 rules.
    _, xml = facturx.get_xml_from_pdf(response.data, check_xsd=False)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931") is True
    assert business_rule_errors(etree.fromstring(xml), tmp_path) == []


def test_the_pdf_is_stored_once_and_identical_after_the_address_changes(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = subscribed(make_customer, subscribe, "FR", "FR40303265045", "Clinique du Parc SAS")
    auth.login(invoice.user.email, PASSWORD)
    first = download(client, invoice)
    assert first.headers["Content-Disposition"] == f'attachment; filename="{invoice.number}.pdf"'
    assert first.headers["ETag"]

    save_billing_details(
        invoice.user,
        BillingDetails(
            name="Someone Else", address_line1="9 New Road", city="Nice", country="FR", postal_code="06000"
        ),
    )
    again = download(client, invoice)
    unchanged = download(client, invoice, **{"If-None-Match": first.headers["ETag"]})

    assert again.data == first.data
    assert "Casey Customer" in pdf_text(again.data) and "9 New Road" not in pdf_text(again.data)
    assert unchanged.status_code == 304 and unchanged.data == b""


def test_another_customers_invoice_or_credit_note_is_not_found(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    theirs = subscribed(make_customer, subscribe)
    note = refunds.refund_invoice(theirs.id, 100, "goodwill")
    mine = subscribed(make_customer, subscribe)
    auth.login(mine.user.email, PASSWORD)

    assert download(client, mine).status_code == 200
    assert download(client, theirs).status_code == 404
    assert client.get(f"/billing/credit-notes/{note.id}/pdf").status_code == 404
    assert client.get("/billing/invoices/99999999/pdf").status_code == 404


def test_a_refund_gives_a_credit_note_pdf_that_references_the_invoice(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = subscribed(make_customer, subscribe, "DE", "DE811907980", "Radiologie am See GmbH")
    note = refunds.refund_invoice(invoice.id, 1190, "Overage charged in error")
    auth.login(invoice.user.email, PASSWORD)

    response = client.get(f"/billing/credit-notes/{note.id}/pdf")

    assert response.headers["Content-Disposition"] == f'attachment; filename="{note.number}.pdf"'
    text = pdf_text(response.data)
    assert "CREDIT NOTE" in text and str(note.number) in text
    assert f"Original invoice {invoice.number}" in text
    assert "Reason: Overage charged in error" in text
    assert "VAT 19% $10.00 $1.90" in text and "Total credited $11.90" in text
    assert "Refunded on" in text and "Visa •••• 4242" in text
    invoice_text = pdf_text(download(client, invoice).data)
    assert "Partly refunded" in invoice_text


@pytest.mark.parametrize(
    ("country", "tax_id", "postal_code", "shown", "absent"),
    [
        (
            "FR",
            "FR40303265045",
            "69006",
            ["VAT (reverse charge, 0%) $0", "Due today $29", "Art. 196"],
            "Tax (",
        ),
        ("FR", None, "75011", ["Tax (20%) $5.80", "Due today $34.80"], "reverse charge"),
        ("DE", "DE811907980", "80802", ["Tax (19%) $5.51", "Due today $34.51"], "reverse charge"),
        ("US", "12-3456789", "62701", ["Due today $29"], "Tax ("),
    ],
    ids=["french-company", "french-consumer", "german-company", "us-customer"],
)
def test_the_checkout_shows_the_tax_the_invoice_will_charge(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    country: str,
    tax_id: str | None,
    postal_code: str,
    shown: list[str],
    absent: str,
) -> None:
    auth.signup(email="buyer@example.com")
    details = {
        "name": "Camille Martin",
        "address_line1": "12 avenue du Parc",
        "city": "Lyon",
        "postal_code": postal_code,
        "country": country,
        "tax_id": tax_id or "",
    }
    assert client.post("/checkout/professional?interval=month", data=details).status_code == 303

    page = client.get("/checkout/professional/card?interval=month")

    text = " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.get_data(as_text=True))).split())
    for phrase in shown:
        assert phrase in text
    assert absent not in text


@pytest.mark.parametrize(
    ("country", "tax_id", "rate"),
    [("FR", None, 2000), ("IT", None, 2200), ("IT", "IT00743110157", 0), ("DE", "DE811907980", 1900)],
)
def test_a_country_not_in_the_rates_pays_the_default_rate(
    country: str, tax_id: str | None, rate: int
) -> None:
    config = {"SELLER_COUNTRY": "DE", "TAX_RATES": {"DE": 1900, "FR": 2000, "default": 2200}}
    profile = BillingProfile(country=country, tax_id=tax_id)

    assert tax_for(profile, config).rate_bp == rate


def test_an_upgrade_invoice_prints_the_credit_and_the_charge_and_passes_factur_x(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    tmp_path: Path,
) -> None:
    user = make_customer(country="FR", tax_id="FR40303265045")
    subscription = subscribe(user, "patient")
    preview = changes.preview(user.id, subscription.id, price_id("md"))
    changes.change_plan(user.id, subscription.id, price_id("md"), preview.charge.total_cents)
    upgrade = max(invoices_for(user.id), key=lambda i: i.id)
    auth.login(user.email, PASSWORD)

    response = download(client, upgrade)

    text = pdf_text(response.data)
    credit, charge = (line.amount_cents for line in upgrade.lines)
    assert credit < 0 < charge
    assert f"-{usd(-credit)}" in text and usd(charge) in text and "Plan change" in text
    assert f"Reverse charge 0% {usd(upgrade.subtotal_cents)} $0.00" in text and REVERSE_CHARGE_MENTION in text
    _, xml = facturx.get_xml_from_pdf(response.data, check_xsd=False)
    assert facturx.xml_check_xsd(xml, flavor="factur-x", level="en16931") is True
    assert business_rule_errors(etree.fromstring(xml), tmp_path) == []
