"""The payment methods page: saved cards, the default renewals are charged to, adding and removing."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.billing import cards
from dicomportal.billing.collection import default_card
from dicomportal.extensions import db
from dicomportal.models import PaymentMethod, Subscription, User
from tests.helpers.auth import AuthActions
from tests.helpers.stripe import confirm_card_setup, stripe_client

PASSWORD = "correct horse battery"
SECOND_CARD = "4000056655665556"  # a Visa debit card


def text_of(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def add_card(app: Flask, client: FlaskClient, user: User, number: str) -> Any:
    """Stripe.js confirms the card on the page's SetupIntent; the browser posts its id."""
    return client.post(
        "/billing/payment-methods", data={"setup_intent_id": confirm_card_setup(app, user, number)}
    )


def saved(user: User) -> list[PaymentMethod]:
    db.session.expire_all()
    return cards.cards_of(user.id)


def attached_at_stripe(app: Flask, user: User) -> set[str]:
    listed = stripe_client(app).v1.payment_methods.list(
        params={"customer": user.stripe_customer_id, "type": "card"}
    )
    return {pm.id for pm in listed.auto_paging_iter()}


def test_add_a_second_card_make_it_default_and_remove_the_first(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    subscribe(user)
    auth.login(user.email, PASSWORD)
    (first,) = saved(user)

    added = add_card(app, client, user, SECOND_CARD)
    assert added.status_code == 303 and added.headers["Location"] == "/billing/payment-methods"
    page = client.get("/billing/payment-methods")
    text = text_of(page)
    assert "Visa ending in 4242 Default Expires 12/2035" in text
    assert "Visa ending in 5556 Expires 12/2035 Make default Remove" in text
    second = next(c for c in saved(user) if c.last4 == "5556")

    made = client.post(f"/billing/payment-methods/{second.id}/default", headers={"HX-Request": "true"})
    assert made.status_code == 200 and "is now your default card" in made.headers["HX-Trigger"]
    assert made.get_data(as_text=True).lstrip().startswith('<section id="payment-methods"')
    default = default_card(user.id)
    assert default is not None and default.id == second.id

    removed = client.post(f"/billing/payment-methods/{first.id}/remove")
    assert removed.status_code == 303
    assert [c.last4 for c in saved(user)] == ["5556"]
    assert attached_at_stripe(app, user) == {second.stripe_payment_method_id}


def test_the_last_card_stays_while_the_subscription_is_live(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    subscribe(user)
    auth.login(user.email, PASSWORD)
    (only,) = saved(user)

    response = client.post(f"/billing/payment-methods/{only.id}/remove", follow_redirects=True)

    assert "the only card your subscription can be charged to" in text_of(response)
    assert [c.id for c in saved(user)] == [only.id]
    assert attached_at_stripe(app, user) == {only.stripe_payment_method_id}


def test_removing_the_default_makes_another_card_the_default(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    subscribe(user)
    auth.login(user.email, PASSWORD)
    add_card(app, client, user, SECOND_CARD)
    visa = next(c for c in saved(user) if c.last4 == "4242")
    assert visa.is_default  # adding a card does not change the default

    client.post(f"/billing/payment-methods/{visa.id}/remove")

    default = default_card(user.id)
    assert default is not None and default.last4 == "5556"


@pytest.mark.parametrize("action", ["default", "remove"])
def test_another_customers_card_is_not_found(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    action: str,
) -> None:
    theirs, mine = make_customer(), make_customer()
    subscribe(theirs)
    (their_card,) = saved(theirs)
    auth.login(mine.email, PASSWORD)

    response = client.post(f"/billing/payment-methods/{their_card.id}/{action}")

    assert response.status_code == 404
    assert [(c.id, c.is_default) for c in saved(theirs)] == [(their_card.id, True)]


def test_a_default_card_expiring_before_the_renewal_is_pointed_out(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    subscription = subscribe(user)
    auth.login(user.email, PASSWORD)
    assert "expires before your next renewal" not in text_of(client.get("/billing/payment-methods"))

    (card,) = saved(user)
    renews = subscription.current_period_end
    card.exp_year, card.exp_month = (
        (renews.year, renews.month - 1) if renews.month > 1 else (renews.year - 1, 12)
    )
    db.session.commit()

    text = text_of(client.get("/billing/payment-methods"))
    assert "Your default card expires before your next renewal." in text
    assert f"Visa ending in 4242 expires {card.exp_month:02d}/{card.exp_year}" in text


def test_a_card_not_confirmed_by_stripe_is_not_added(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    auth.login(user.email, PASSWORD)
    client.get("/billing/payment-methods")  # the page's SetupIntent, never confirmed
    assert user.card_setup_intent_id

    response = client.post(
        "/billing/payment-methods", data={"setup_intent_id": user.card_setup_intent_id}, follow_redirects=True
    )

    assert "was not confirmed" in text_of(response) and saved(user) == []


def test_the_dashboard_warns_too_when_the_card_runs_out_before_the_renewal(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    subscription = subscribe(user)
    auth.login(user.email, PASSWORD)
    assert "expires before your next renewal" not in text_of(client.get("/account/"))

    (card,) = saved(user)
    renews = subscription.current_period_end
    card.exp_year, card.exp_month = (
        (renews.year, renews.month - 1) if renews.month > 1 else (renews.year - 1, 12)
    )
    db.session.commit()

    assert "This card expires before your next renewal" in text_of(client.get("/account/"))
