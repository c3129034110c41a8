"""The help articles about invoices, cards and billing details name the controls exactly as the
pages show them: every bold name in them is on one of the customer's billing pages."""

from __future__ import annotations

import html
import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal import resource_dir
from dicomportal.billing import payment_methods, refunds
from dicomportal.billing.invoicing import LineSpec, create_invoice, finalize
from dicomportal.billing.summary import first_invoice
from dicomportal.extensions import db
from dicomportal.help.centre import help_centre
from dicomportal.models import BillingReason, LineKind, Subscription, User
from tests.helpers.auth import AuthActions
from tests.helpers.stripe import confirm_card_setup

# Bold words in these articles that are facts, not controls.
NOT_CONTROLS = {
    "Visa",
    "Mastercard",
    "Apple Pay",
    "Google Pay",
    "Stripe",
    "never reaches our servers",
    "1, 3 and 7 days",
    "A pending hold.",
    "Two different invoices.",
}
ARTICLES = [
    "invoices-and-billing-details",
    "accepted-payment-methods",
    "failed-or-duplicate-payments",
    "confirm-a-payment-with-your-bank",
]


def visible_text(markup: str) -> str:
    markup = re.sub(r"(?s)<(script|style)[^>]*>.*?</\1>", " ", markup)
    markup = re.sub(r"<option[^>]*>", " ", markup)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


@pytest.mark.parametrize("slug", ARTICLES)
def test_every_control_an_article_names_is_on_the_pages(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    slug: str,
) -> None:
    user = make_customer()
    paid = first_invoice(subscribe(user))
    assert paid is not None
    refunds.refund_invoice(paid.id, 100, "goodwill")  # partly refunded
    due = create_invoice(user, [LineSpec(LineKind.ADDON, "Extra storage", 1000)], BillingReason.MANUAL)
    finalize(due, app.config)
    db.session.commit()
    payment_methods.add_card(user, confirm_card_setup(app, user, "4000056655665556"))  # a second card
    auth.login(user.email, "correct horse battery")
    pages = " ".join(
        visible_text(client.get(path).get_data(as_text=True))
        for path in ("/account/", "/billing/invoices", "/billing/payment-methods", "/billing/details")
    )
    # The past-due and confirm-payment banners, the page confirming a payment the bank held, and
    # the invoice statuses of other states, as their templates write them.
    templates = resource_dir("templates")
    for template in ("account/_current_plan.html", "billing/macros.html", "checkout/authenticate.html"):
        pages += (templates / template).read_text()

    named = re.findall(r"<strong>(.*?)</strong>", help_centre().get(slug).html, re.DOTALL)
    controls = {" ".join(name.split()) for name in named} - NOT_CONTROLS
    assert controls
    missing = [name for name in sorted(controls) if name not in pages]
    assert missing == []
