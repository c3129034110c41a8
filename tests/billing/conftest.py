"""Billing fixtures: customers with billing details, and cards confirmed the way Stripe.js does it
(a SetupIntent confirmed at localstripe with the card number; our server never sees the number)."""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable
from typing import Any

import pytest
import stripe
from flask import Flask

from dicomportal.accounts import create_user
from dicomportal.billing import cards, subscriptions
from dicomportal.extensions import db
from dicomportal.models import BillingProfile, Interval, Plan, Subscription, User

GOOD_CARD = "4242424242424242"
DECLINED_AT_CHARGE = "4000000000000341"
THREE_D_SECURE = "4000002500003155"


def stripe_client(app: Flask) -> stripe.StripeClient:
    return stripe.StripeClient(
        app.config["STRIPE_SECRET_KEY"],
        base_addresses={"api": app.config["STRIPE_API_BASE"]},
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
    base = app.config["STRIPE_API_BASE"]
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


@pytest.fixture
def make_customer(app: Flask) -> Callable[..., User]:
    counter = iter(range(1, 10_000))

    def make(email: str | None = None, country: str = "US", tax_id: str | None = None) -> User:
        user = create_user(
            email or f"customer{next(counter)}@example.com", "correct horse battery", "Casey Customer"
        )
        user.billing_profile = BillingProfile(
            name="Casey Customer",
            address_line1="1 Main St",
            city="Springfield",
            postal_code="12345",
            country=country,
            tax_id=tax_id,
        )
        db.session.commit()
        return user

    return make


@pytest.fixture
def subscribe(app: Flask) -> Callable[..., Subscription]:
    def run(
        user: User,
        plan_code: str = "professional",
        interval: Interval = Interval.MONTH,
        card: str = GOOD_CARD,
    ) -> Subscription:
        setup_id = confirm_card_setup(app, user, card)
        return subscriptions.subscribe(user.id, price_id(plan_code, interval), setup_id)

    return run
