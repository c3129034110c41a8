"""In Chromium: a renewal the bank held for 3-D Secure, from the email to the bank's dialog, with
the saved card and nothing typed again; and a failed authentication that ends the subscription
after the last dunning day (docs/payments.md, "Authentication needed at renewal")."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from dicomportal.billing import entitlements, subscriptions
from dicomportal.extensions import db
from dicomportal.models import Invoice, InvoiceStatus, PaymentStatus, Subscription, User
from tests.billing.test_authentication_at_renewal import (
    ALWAYS_AUTHENTICATES,
    RENEWAL,
    renewal_invoice,
    subscribed_with,
    tick,
)
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import intents_of

PASSWORD = "correct horse battery"


def held_renewal(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription], smtp: SmtpSink
) -> tuple[User, Invoice, str]:
    """A customer whose renewal waits for their bank, and the confirm link from our email."""
    user = subscribed_with(app, make_customer, subscribe, ALWAYS_AUTHENTICATES)
    tick(RENEWAL)
    invoice = renewal_invoice(user)
    mail = smtp.last_to(user.email)
    assert "Please confirm your payment" in str(mail["Subject"])
    link = re.search(r"http://\S+/checkout/authenticate/\d+", SmtpSink.text(mail))
    assert link is not None
    return user, invoice, link.group(0)


def log_in_to(page: Any, url: str, user: User) -> None:
    """The email's link asks for the login first, then lands on the page it points at."""
    page.goto(url)
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


@pytest.mark.browser
def test_the_email_and_the_banner_lead_to_one_click_and_the_banks_dialog_then_paid_once(
    app: Flask,
    live_server: str,
    page: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    user, invoice, link = held_renewal(app, make_customer, subscribe, smtp)
    assert link.startswith(live_server)

    log_in_to(page, f"{live_server}/auth/login?next=/account/", user)
    banner = page.get_by_role("alert").filter(has_text="Your bank needs you to confirm your payment of $29")
    expect(banner).to_be_visible()
    banner.get_by_role("button", name="Confirm payment").click()
    assert page.url == link

    expect(page.get_by_role("heading", name="Confirm your payment")).to_be_visible()
    expect(page.get_by_text("Visa card ending in 3184")).to_be_visible()
    assert page.locator("input[placeholder*=number]").count() == 0  # no card to type again
    page.screenshot(path="test-artifacts/renewal-confirm-page.png")
    page.get_by_role("button", name="Confirm payment of $29").click()
    page.get_by_role("button", name="Complete authentication").click()  # the bank's dialog

    expect(page.get_by_text("Thank you! Your payment of $29 went through")).to_be_visible()
    page.screenshot(path="test-artifacts/renewal-confirmed.png", full_page=True)
    db.session.expire_all()
    paid = db.session.get_one(Invoice, invoice.id)
    assert paid.status == InvoiceStatus.PAID and paid.amount_paid_cents == 2900
    ((payment_status, intent_id),) = [(p.status, p.stripe_payment_intent_id) for p in paid.payments]
    assert payment_status == PaymentStatus.SUCCEEDED
    renewal_intents = [i for i in intents_of(app, user) if i.metadata["invoice_id"] == str(invoice.id)]
    assert [(i.id, i.status) for i in renewal_intents] == [(intent_id, "succeeded")]  # the same intent
    assert subscriptions.live_subscription(user.id).is_active


@pytest.mark.browser
def test_a_failed_authentication_leaves_it_due_and_the_subscription_ends_after_the_last_day(
    app: Flask,
    live_server: str,
    page: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    user, invoice, link = held_renewal(app, make_customer, subscribe, smtp)

    log_in_to(page, link, user)
    page.get_by_role("button", name="Confirm payment of $29").click()
    page.get_by_role("button", name="Fail authentication").click()

    expect(page.get_by_role("alert")).to_contain_text(
        "Authentication failed. You have not been charged and your payment is still due."
    )
    db.session.expire_all()
    assert db.session.get_one(Invoice, invoice.id).status == InvoiceStatus.OPEN
    assert entitlements.entitlements_for(user.id).can_view  # the past-due grace

    due = invoice.finalized_at
    assert due is not None
    for days in (1, 3, 7):
        tick(due + timedelta(days=days, hours=1))

    db.session.expire_all()
    assert db.session.get_one(Invoice, invoice.id).status == InvoiceStatus.UNCOLLECTIBLE
    assert not entitlements.entitlements_for(user.id).can_view
    page.goto(f"{live_server}/account/")
    expect(page.get_by_text("Access ended")).to_be_visible()
    assert [i.amount for i in intents_of(app, user) if i.status == "succeeded"] == [2900]
