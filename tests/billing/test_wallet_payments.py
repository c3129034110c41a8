"""Apple Pay / Google Pay: the wallet gives Stripe.js a PaymentMethod, which confirms the card form's
own SetupIntent (``confirmCardSetup(clientSecret, {payment_method: id})``), and the browser posts the
SetupIntent's id like a typed card. The server has one path for both: these tests drive it with a
SetupIntent confirmed each way and expect the same subscription, charge and saved card.

localstripe's Stripe.js has no ``paymentRequest``, so no browser here can show the wallet button;
tests/test_card_js.py runs card.js against a stubbed Stripe.js for the browser side."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.billing import subscriptions
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.models import InvoiceStatus, PaymentMethod, SubscriptionStatus, User
from tests.helpers.auth import AuthActions
from tests.helpers.stripe import GOOD_CARD, intents_of, stripe_client

CARD_STEP = "/checkout/professional/card?interval=month"
CONFIRM = "/checkout/professional/confirm?interval=month"
CARD = {"number": GOOD_CARD, "exp_month": 12, "exp_year": 2035, "cvc": "123"}


def setup_intent_on_page(client: FlaskClient) -> str:
    """The id of the SetupIntent the card step hands to Stripe.js (from its client secret)."""
    page = client.get(CARD_STEP).get_data(as_text=True)
    found = re.search(r'data-client-secret="(seti_\w+?)_secret', page)
    assert found, "no card form on the card step"
    return found.group(1)


def typed_card(app: Flask, setup_id: str) -> None:
    """confirmCardSetup(clientSecret, {payment_method: {card: cardElement, ...}})."""
    stripe_client(app).v1.setup_intents.confirm(
        setup_id, params={"payment_method_data": {"type": "card", "card": CARD}}
    )


def wallet_card(app: Flask, setup_id: str) -> None:
    """The wallet's sheet gives Stripe.js a PaymentMethod (ev.paymentMethod), then
    confirmCardSetup(clientSecret, {payment_method: ev.paymentMethod.id})."""
    client = stripe_client(app)
    from_wallet = client.v1.payment_methods.create(params={"type": "card", "card": CARD})
    client.v1.setup_intents.confirm(setup_id, params={"payment_method": from_wallet.id})


@pytest.mark.parametrize("confirm_in_browser", [typed_card, wallet_card], ids=["typed card", "wallet"])
def test_a_card_from_a_wallet_subscribes_exactly_like_a_typed_card(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    confirm_in_browser: Callable[[Flask, str], None],
) -> None:
    user = make_customer("pat@example.com")
    auth.login()
    setup_id = setup_intent_on_page(client)

    confirm_in_browser(app, setup_id)
    response = client.post(CONFIRM, data={"setup_intent_id": setup_id})

    assert response.status_code == 303 and "/checkout/done" in response.headers["Location"]
    db.session.expire_all()
    subscription = subscriptions.live_subscription(user.id)
    assert subscription is not None and subscription.status == SubscriptionStatus.ACTIVE
    (invoice,) = invoices_for(user.id)
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_paid_cents == 2900
    (card,) = db.session.scalars(db.select(PaymentMethod).where(PaymentMethod.user_id == user.id))
    assert (card.brand, card.last4, card.is_default) == ("visa", "4242", True)
    (intent,) = intents_of(app, user)
    assert (intent.status, intent.amount, intent.payment_method) == (
        "succeeded",
        2900,
        card.stripe_payment_method_id,
    )


def test_the_wallet_sheet_shows_the_first_charge_with_its_tax(
    app_config: dict[str, object], request: pytest.FixtureRequest
) -> None:
    app_config["TAX_RATES"] = {"US": 1000}  # 10%: the sheet's total is what the card is charged
    app: Flask = request.getfixturevalue("app")  # built after the setting above
    client = app.test_client()
    request.getfixturevalue("make_customer")("pat@example.com")
    AuthActions(client).login()

    page = client.get(CARD_STEP).get_data(as_text=True)

    assert 'data-wallet-amount="3190"' in page
    assert 'data-wallet-label="DICOM Portal Professional"' in page
    assert 'data-currency="usd"' in page
    assert '<div id="wallet" class="wallet" hidden>' in page  # shown by card.js only if a wallet can pay
