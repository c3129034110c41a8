"""Billing fixtures: customers with billing details, and cards confirmed the way Stripe.js does it
(a SetupIntent confirmed at localstripe with the card number; our server never sees the number)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask

from dicomportal.accounts import create_user
from dicomportal.billing import subscriptions
from dicomportal.extensions import db
from dicomportal.models import BillingProfile, Interval, Subscription, User
from tests.helpers.stripe import GOOD_CARD, confirm_card_setup, price_id


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
