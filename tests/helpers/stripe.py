"""Stripe in the tests: localstripe, and what Stripe.js does in the browser (confirm a card, 3-D Secure)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import stripe
from flask import Flask

from dicomportal.billing import cards
from dicomportal.billing.summary import first_invoice
from dicomportal.extensions import db
from dicomportal.models import Interval, Invoice, InvoiceStatus, Plan, Subscription, User
from tests.helpers.strict_stripe import upstream_of

GOOD_CARD = "4242424242424242"


DECLINED_AT_CHARGE = "4000000000000341"


THREE_D_SECURE = "4000002500003155"


def stripe_client(app: Flask) -> stripe.StripeClient:
    """A client for what the tests do at Stripe in the browser's or the Dashboard's place: it talks
    to localstripe directly, past the strict proxy's rules, which judge the app alone."""
    return stripe.StripeClient(
        app.config["STRIPE_SECRET_KEY"],
        base_addresses={"api": upstream_of(app.config["STRIPE_API_BASE"])},
        max_network_retries=0,
    )


def confirm_card_setup(app: Flask, user: User, number: str) -> str:
    """What Stripe.js's confirmCardSetup does in the browser: returns the SetupIntent id."""
    setup = cards.start_card_setup(user)
    client = stripe_client(app)
    card = {"number": number, "exp_month": 12, "exp_year": 2035, "cvc": "123"}
    intent = client.v1.setup_intents.confirm(
        setup.id, params={"payment_method_data": {"type": "card", "card": card}}
    )
    if intent.status == "requires_action":  # "Complete authentication" in the 3-D Secure dialog
        intent = client.v1.setup_intents.confirm(setup.id)
    assert intent.status == "succeeded", intent.status
    return setup.id


def authenticate_payment(app: Flask, intent_id: str, client_secret: str, success: bool = True) -> None:
    """What Stripe.js's confirmCardPayment does after the 3-D Secure dialog."""
    base = upstream_of(app.config["STRIPE_API_BASE"])
    url = f"{base}/v1/payment_intents/{intent_id}/_authenticate?success={str(success).lower()}"
    body = json.dumps({"key": app.config["STRIPE_PUBLISHABLE_KEY"], "client_secret": client_secret}).encode()
    urllib.request.urlopen(urllib.request.Request(url, data=body, method="POST"), timeout=10).close()


def intents_of(app: Flask, user: User) -> list[Any]:
    """Every PaymentIntent localstripe holds for this customer, oldest first."""
    if not user.stripe_customer_id:
        return []
    pages = stripe_client(app).v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    return sorted((i for i in pages if i.customer == user.stripe_customer_id), key=lambda i: i.created)


def price_id(plan_code: str, interval: Interval = Interval.MONTH) -> int:
    plan = db.session.scalar(db.select(Plan).where(Plan.code == plan_code))
    assert plan is not None
    price = plan.active_price(interval)
    assert price is not None
    return price.id


def paid_invoice(make_customer: Callable[..., User], subscribe: Callable[..., Subscription]) -> Invoice:
    """A new customer's first invoice, paid by card (the billing fixtures' ``make_customer`` and
    ``subscribe``)."""
    invoice = first_invoice(subscribe(make_customer()))
    assert invoice is not None and invoice.status == InvoiceStatus.PAID
    return invoice


def intent_of(invoice: Invoice) -> str:
    """The PaymentIntent of the invoice's last payment attempt."""
    intent = invoice.payments[-1].stripe_payment_intent_id
    assert intent is not None
    return intent
