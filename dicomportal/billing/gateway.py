"""The ONLY module that imports ``stripe``: customers, cards, PaymentIntents, refunds, webhooks.

It speaks the subset of the API that real Stripe and localstripe serve alike (LOCALSTRIPE.md) and
returns small dataclasses, so billing code never handles Stripe objects. Every call goes through
the official SDK; nothing here decides anything about money.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any

import stripe
from flask import current_app

from dicomportal.billing.errors import CardDeclined, GatewayUnavailable, PaymentSetupFailed


@dataclass(frozen=True)
class Card:
    id: str
    brand: str
    last4: str
    exp_month: int
    exp_year: int


@dataclass(frozen=True)
class SetupIntentInfo:
    id: str
    status: str
    client_secret: str
    customer: str | None
    payment_method: str | None


@dataclass(frozen=True)
class IntentInfo:
    """A PaymentIntent's state: ``succeeded``, ``requires_action``, ``requires_payment_method``
    (failed), ``requires_confirmation``, ``processing`` or ``canceled``."""

    id: str
    status: str
    amount: int
    client_secret: str | None
    metadata: dict[str, str]
    failure_code: str | None = None
    failure_message: str | None = None


def client() -> stripe.StripeClient:
    """The app's StripeClient (one per app), pointed at localstripe when STRIPE_API_BASE is set."""
    app = current_app
    cached: stripe.StripeClient | None = app.extensions.get("stripe_client")
    if cached is None:
        config = app.config
        base = config.get("STRIPE_API_BASE") or None
        cached = stripe.StripeClient(
            config["STRIPE_SECRET_KEY"],
            base_addresses={"api": base} if base else {},
            max_network_retries=0 if base else 2,
            http_client=stripe.RequestsClient(timeout=float(config.get("STRIPE_TIMEOUT", 20))),
        )
        app.extensions["stripe_client"] = cached
    return cached


def _unavailable(exc: stripe.StripeError) -> GatewayUnavailable:
    return GatewayUnavailable(
        f"The payment service is unavailable ({type(exc).__name__}). Nothing was charged."
    )


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one SDK call, turning transport and server failures into GatewayUnavailable."""
    try:
        return fn(*args, **kwargs)
    except (stripe.APIConnectionError, stripe.RateLimitError) as exc:
        raise _unavailable(exc) from exc
    except stripe.APIError as exc:
        raise _unavailable(exc) from exc


def create_customer(email: str, name: str, user_id: int) -> str:
    """Create the Stripe Customer for one of our users and return its id."""
    params = {"email": email, "name": name, "metadata": {"user_id": str(user_id)}}
    return str(_call(client().v1.customers.create, params=params).id)


def update_customer(customer_id: str, email: str, name: str, address: dict[str, str] | None) -> None:
    """Keep Stripe's copy of the customer's contact details in step with ours."""
    params: dict[str, Any] = {"email": email, "name": name}
    if address:
        params["address"] = address
    _call(client().v1.customers.update, customer_id, params=params)


def create_setup_intent(customer_id: str) -> SetupIntentInfo:
    """A SetupIntent for saving a card for later, off-session charges."""
    intent = _call(client().v1.setup_intents.create, params={"customer": customer_id, "usage": "off_session"})
    return _setup_info(intent)


def retrieve_setup_intent(setup_intent_id: str) -> SetupIntentInfo:
    return _setup_info(_call(client().v1.setup_intents.retrieve, setup_intent_id))


def _setup_info(intent: Any) -> SetupIntentInfo:
    data = intent.to_dict()
    pm = data.get("payment_method")
    return SetupIntentInfo(
        id=data["id"],
        status=data["status"],
        client_secret=data.get("client_secret") or "",
        customer=data.get("customer"),
        payment_method=pm["id"] if isinstance(pm, dict) else pm,
    )


def attach_card(payment_method_id: str, customer_id: str) -> Card:
    """Attach a card (already confirmed in the browser) to the customer and return its display details.

    :raises CardDeclined: the card was refused.
    :raises PaymentSetupFailed: the payment method is unknown or not a card.
    """
    try:
        pm = _call(client().v1.payment_methods.attach, payment_method_id, params={"customer": customer_id})
    except stripe.CardError as exc:
        raise CardDeclined(exc.user_message or "Your card was declined.", exc.code) from exc
    except stripe.InvalidRequestError as exc:
        raise PaymentSetupFailed("We could not save that card. Please try again.") from exc
    card = pm.to_dict()["card"]
    return Card(pm.id, str(card["brand"]), str(card["last4"]), int(card["exp_month"]), int(card["exp_year"]))


def create_payment_intent(
    *,
    amount: int,
    currency: str,
    customer: str,
    payment_method: str,
    metadata: dict[str, str],
    idempotency_key: str,
) -> IntentInfo:
    """Create an UNCONFIRMED PaymentIntent (ARCHITECTURE.md section 6, step 2).

    Real Stripe honours ``idempotency_key``; localstripe ignores it, so callers also look for an
    intent they may have created before (:func:`find_intent_by_metadata`).
    """
    params = {
        "amount": amount,
        "currency": currency.lower(),
        "customer": customer,
        "payment_method": payment_method,
        "confirm": False,
        "metadata": metadata,
    }
    intent = _call(
        client().v1.payment_intents.create, params=params, options={"idempotency_key": idempotency_key}
    )
    return _intent_info(intent)


def confirm_payment_intent(intent_id: str) -> IntentInfo:
    """Confirm (charge) a PaymentIntent; a decline is a result, not an error."""
    try:
        return _intent_info(_call(client().v1.payment_intents.confirm, intent_id))
    except stripe.CardError:
        return retrieve_payment_intent(intent_id)


def retrieve_payment_intent(intent_id: str) -> IntentInfo:
    return _intent_info(_call(client().v1.payment_intents.retrieve, intent_id))


def find_intent_by_metadata(customer: str, key: str, value: str) -> IntentInfo | None:
    """The customer's PaymentIntent whose ``metadata[key] == value``, if one exists."""
    for intent in list_payment_intents(customer):
        if intent.metadata.get(key) == value:
            return intent
    return None


def _intent_info(intent: Any) -> IntentInfo:
    data = intent.to_dict()
    error = data.get("last_payment_error") or {}
    return IntentInfo(
        id=data["id"],
        status=data["status"],
        amount=int(data["amount"]),
        client_secret=data.get("client_secret"),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        failure_code=error.get("decline_code") or error.get("code"),
        failure_message=error.get("message"),
    )


def list_payment_intents(customer: str) -> list[IntentInfo]:
    """Every PaymentIntent of a customer.

    Stripe filters by ``customer``; localstripe refuses that parameter, so there we page through
    all intents and filter here (only test and demo data lives in localstripe).
    """
    intents = client().v1.payment_intents
    try:
        pages = _call(intents.list, params={"customer": customer, "limit": 100}).auto_paging_iter()
        return [_intent_info(i) for i in pages]
    except stripe.InvalidRequestError:
        pages = _call(intents.list, params={"limit": 100}).auto_paging_iter()
        return [_intent_info(i) for i in pages if i.to_dict().get("customer") == customer]


def verify_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """Check a webhook's signature and return the event as a plain dict.

    :raises ValueError: the payload is not valid JSON or the signature does not verify.
    """
    try:
        event = client().construct_event(payload, signature, secret)
    except stripe.SignatureVerificationError as exc:
        raise ValueError("bad signature") from exc
    result: dict[str, Any] = event.to_dict()
    return result


def cancel_payment_intent(intent_id: str) -> None:
    """Cancel a PaymentIntent that must never be completed (an abandoned 3-D Secure attempt)."""
    # Already succeeded or canceled: the caller re-reads the intent and records the truth.
    with contextlib.suppress(stripe.InvalidRequestError):
        _call(client().v1.payment_intents.cancel, intent_id)


def find_setup_intent(setup_intent_id: str) -> SetupIntentInfo | None:
    """A SetupIntent by id, or ``None`` when Stripe does not know it (its data was reset, or it is
    another account's); Stripe being unreachable still raises GatewayUnavailable."""

    def retrieve_or_none() -> Any:
        try:
            return client().v1.setup_intents.retrieve(setup_intent_id)
        except stripe.InvalidRequestError:  # answered here, before _call sorts the other errors
            return None

    intent = _call(retrieve_or_none)
    return None if intent is None else _setup_info(intent)
