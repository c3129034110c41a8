"""Cards follow Stripe: one detached there leaves our lists, a new expiry from the bank moves the warning."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from dicomportal.billing import cards
from dicomportal.extensions import db
from dicomportal.models import Subscription, User
from tests.helpers.auth import AuthActions
from tests.helpers.stripe import stripe_client
from tests.helpers.webhooks import localstripe_config, post_event, stripe_object

PASSWORD = "correct horse battery"


def text_of(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def subscribed(
    auth: AuthActions, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> tuple[User, Subscription]:
    user = make_customer()
    subscription = subscribe(user)  # card 4242, expires 12/2035
    auth.login(user.email, PASSWORD)
    return user, subscription


def test_a_card_detached_at_stripe_leaves_the_payment_methods_page_and_the_dashboard_says_so(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user, _subscription = subscribed(auth, make_customer, subscribe)
    (card,) = cards.cards_of(user.id)
    assert "Visa ending in 4242" in text_of(client.get("/billing/payment-methods"))
    stale = stripe_object("payment_method", id=card.stripe_payment_method_id, customer=None)

    # A forged or early event changes nothing: Stripe still has the card on the customer.
    assert post_event(client, "payment_method.detached", stale, "evt_early") == 200
    db.session.expire_all()
    assert [c.last4 for c in cards.cards_of(user.id)] == ["4242"]

    stripe_client(app).v1.payment_methods.detach(card.stripe_payment_method_id)
    assert post_event(client, "payment_method.detached", stale, "evt_detached") == 200

    db.session.expire_all()
    assert cards.cards_of(user.id) == []
    methods = text_of(client.get("/billing/payment-methods"))
    assert "Visa ending in 4242" not in methods and "No card is set for your next renewal" in methods
    dashboard = text_of(client.get("/account/"))
    assert "Visa ending in 4242" not in dashboard
    assert "No card on file for your next renewal on" in dashboard


def test_a_new_expiry_from_the_bank_refreshes_the_card_and_the_renewal_warning_follows(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user, subscription = subscribed(auth, make_customer, subscribe)
    (card,) = cards.cards_of(user.id)
    renews = subscription.current_period_end
    warning = "Your default card expires before your next renewal"
    assert warning not in text_of(client.get("/billing/payment-methods"))

    # The bank's card updater: the card now runs out the month before the renewal.
    before = (renews.month - 1) or 12
    year = renews.year if renews.month > 1 else renews.year - 1
    updated = localstripe_config(
        app, f"payment_methods/{card.stripe_payment_method_id}", exp_month=before, exp_year=year, last4="1881"
    )
    event = stripe_object("payment_method", id=updated["id"], customer=user.stripe_customer_id)
    assert post_event(client, "payment_method.automatically_updated", event, "evt_auto") == 200

    page = text_of(client.get("/billing/payment-methods"))
    assert f"Visa ending in 1881 Default Expires {before:02d}/{year}" in page and warning in page
    assert "This card expires before your next renewal" in text_of(client.get("/account/"))

    localstripe_config(app, f"payment_methods/{card.stripe_payment_method_id}", exp_month=1, exp_year=2031)
    assert post_event(client, "payment_method.updated", event, "evt_updated") == 200
    page = text_of(client.get("/billing/payment-methods"))
    assert "Visa ending in 1881 Default Expires 01/2031" in page and warning not in page
