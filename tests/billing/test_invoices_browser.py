"""In Chromium: from the dashboard to the invoice history and a PDF download, then billing details
and cards changed the way a customer does it (Stripe.js as localstripe serves it)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from dicomportal.billing import cards
from dicomportal.billing.summary import first_invoice
from dicomportal.extensions import db
from dicomportal.models import Subscription, User
from tests.helpers.pdf import pdf_text

SCREENSHOTS = Path("/tmp")
PASSWORD = "correct horse battery"


def fill_card(page: Any, number: str) -> None:
    """Type into the five inputs localstripe's Card Element renders."""
    page.locator("#card-element input[placeholder*=number]").fill(number)
    page.locator("#card-element input[placeholder*=exp_month]").fill("11")
    page.locator("#card-element input[placeholder*=exp_year]").fill("31")
    page.locator("#card-element input[placeholder*=cvc]").fill("123")
    page.locator("#card-element input[placeholder*=postal_code]").fill("75011")


@pytest.mark.browser
def test_invoices_billing_details_and_cards_from_the_dashboard(
    app: Flask,
    live_server: str,
    page: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    tmp_path: Path,
) -> None:
    user = make_customer(email="camille@example.com")
    invoice = first_invoice(subscribe(user))
    assert invoice is not None and invoice.number
    number, email, user_id = invoice.number, user.email, user.id
    db.session.remove()

    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "invoices-1-dashboard.png"), full_page=True)

    # The invoice history, and the PDF as the browser downloads it.
    page.get_by_role("link", name="All invoices").click()
    expect(page.get_by_role("heading", name="Invoices", exact=True)).to_be_visible()
    row = page.locator("tr", has=page.get_by_role("rowheader", name=number))
    expect(row).to_contain_text("Paid")
    page.screenshot(path=str(SCREENSHOTS / "invoices-2-history.png"), full_page=True)
    with page.expect_download() as download_info:
        row.get_by_role("link", name="Download PDF").click()
    download = download_info.value
    assert download.suggested_filename == f"{number}.pdf"
    saved = tmp_path / download.suggested_filename
    download.save_as(saved)
    assert number in pdf_text(saved.read_bytes()) and "Casey Customer" in pdf_text(saved.read_bytes())

    # Billing details: an invalid VAT number is explained in place, then a valid one is saved.
    page.get_by_role("link", name="Back to your account").click()
    page.get_by_role("link", name="Billing details").click()
    page.get_by_label("Company (optional)").fill("Clinique du Parc SAS")
    page.get_by_label("Country").select_option("FR")
    page.get_by_label("Address", exact=True).fill("12 avenue du Parc")
    page.get_by_label("City or town").fill("Lyon")
    page.get_by_label("Postal code").fill("69006")
    page.get_by_label("VAT or tax ID (optional)").fill("FR123")
    page.get_by_label("VAT or tax ID (optional)").press("Tab")  # checked as soon as it changes
    expect(page.locator("#tax_id-error")).to_contain_text("Enter a valid EU VAT number")
    page.get_by_role("button", name="Save billing details").click()  # and refused when saved
    expect(page.locator("#tax_id-error")).to_contain_text("Enter a valid EU VAT number")
    page.screenshot(path=str(SCREENSHOTS / "invoices-3-details-error.png"), full_page=True)
    page.get_by_label("VAT or tax ID (optional)").fill("FR 40 303 265 045")
    page.get_by_role("button", name="Save billing details").click()
    expect(page.get_by_text("Your billing details were saved.")).to_be_visible()
    expect(page.locator("#billing-settings")).to_contain_text("Tax ID FR40303265045")

    # A second card, made the default; then the first one removed.
    page.get_by_role("link", name="Payment methods", exact=True).first.click()
    expect(page.get_by_role("heading", name="Payment methods", exact=True)).to_be_visible()
    fill_card(page, "4000056655665556")
    page.get_by_role("button", name="Add card").click()
    expect(page.get_by_text("Your card ending in 5556 was added.")).to_be_visible()
    second = page.locator("#payment-methods li", has_text="ending in 5556")
    first = page.locator("#payment-methods li", has_text="ending in 4242")
    expect(first).to_contain_text("Default")
    second.get_by_role("button", name="Make default").click()
    expect(second).to_contain_text("Default")
    expect(first).not_to_contain_text("Default")
    page.screenshot(path=str(SCREENSHOTS / "invoices-4-payment-methods.png"), full_page=True)
    page.once("dialog", lambda dialog: dialog.accept())
    first.get_by_role("button", name="Remove").click()
    expect(page.locator("#payment-methods li")).to_have_count(1)
    expect(page.locator("#payment-methods")).to_contain_text("Visa ending in 5556")
    page.screenshot(path=str(SCREENSHOTS / "invoices-5-card-removed.png"), full_page=True)

    db.session.remove()
    assert [(c.last4, c.is_default) for c in cards.cards_of(user_id)] == [("5556", True)]
    profile = db.session.get(User, user_id).billing_profile
    assert profile is not None and (profile.tax_id, profile.city) == ("FR40303265045", "Lyon")
