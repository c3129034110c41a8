"""The card form reuses the customer's open SetupIntent instead of creating one at Stripe per view."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.billing import cards, gateway
from dicomportal.extensions import db
from dicomportal.models import User
from tests.helpers.auth import AuthActions
from tests.helpers.stripe import GOOD_CARD, confirm_card_setup, stripe_client

CARD_PAGE = "/billing/card"
CARD_STEP = "/checkout/professional/card?interval=month"


def setup_intents_at_stripe(app: Flask, user: User) -> list[str]:
    """The ids of every SetupIntent localstripe holds for this customer."""
    db.session.refresh(user)
    pages = stripe_client(app).v1.setup_intents.list(params={"limit": 100}).auto_paging_iter()
    return sorted(s.id for s in pages if s.customer == user.stripe_customer_id)


def client_secret_on(client: FlaskClient, path: str) -> str:
    response = client.get(path)
    assert response.status_code == 200, response.status_code
    found = re.search(r'data-client-secret="([^"]+)"', response.get_data(as_text=True))
    assert found, "no card form on the page"
    return found.group(1)


def logged_in_customer(make_customer: Callable[..., User], auth: AuthActions) -> User:
    user = make_customer("pat@example.com")
    assert auth.login().status_code == 303
    return user


def test_reloading_the_card_page_and_the_card_step_uses_one_setup_intent(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = logged_in_customer(make_customer, auth)

    secrets = {client_secret_on(client, path) for path in (CARD_PAGE, CARD_PAGE, CARD_STEP, CARD_STEP)}

    assert len(setup_intents_at_stripe(app, user)) == 1
    assert len(secrets) == 1  # the same SetupIntent on every page


def test_after_a_card_is_confirmed_the_next_view_offers_a_new_setup_intent(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = logged_in_customer(make_customer, auth)
    first = client_secret_on(client, CARD_PAGE)
    used = confirm_card_setup(app, user, GOOD_CARD)  # Stripe.js confirms the SetupIntent the page offered

    second = client_secret_on(client, CARD_PAGE)

    assert first.startswith(used) and not second.startswith(used)
    assert len(setup_intents_at_stripe(app, user)) == 2


def test_a_day_old_setup_intent_is_not_offered_again(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = logged_in_customer(make_customer, auth)
    first = client_secret_on(client, CARD_PAGE)

    with time_machine.travel(datetime.now(UTC) + timedelta(days=1, minutes=1)):
        later = client_secret_on(client, CARD_PAGE)

    assert later != first
    assert len(setup_intents_at_stripe(app, user)) == 2


def test_a_remembered_setup_intent_of_someone_else_or_unknown_to_stripe_is_never_offered(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = logged_in_customer(make_customer, auth)
    other = make_customer("other@example.com")
    theirs = cards.start_card_setup(other)
    mine = client_secret_on(client, CARD_PAGE)

    for planted in (theirs.id, "seti_unknown_to_stripe"):
        db.session.refresh(user)
        user.card_setup_intent_id = planted
        db.session.commit()
        offered = client_secret_on(client, CARD_PAGE)
        assert not offered.startswith(planted) and offered != mine
    assert len(setup_intents_at_stripe(app, user)) == 3
    assert gateway.find_setup_intent("seti_unknown_to_stripe") is None
