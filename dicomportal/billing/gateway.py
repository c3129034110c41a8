"""The ONLY module that imports ``stripe``: customers, cards, PaymentIntents, refunds, webhooks.

It speaks the subset of the API that real Stripe and localstripe serve alike (docs/localstripe.md) and
returns small dataclasses, so billing code never handles Stripe objects. Every call goes through
the official SDK; nothing here decides anything about money.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import stripe
from flask import current_app

from dicomportal.billing.errors import (
    CardDeclined,
    GatewayMisconfigured,
    GatewayUnavailable,
    PaymentRejected,
    PaymentSetupFailed,
    RateLimited,
)

# Payment methods for every intent we create: what the Dashboard enables, minus those that need a
# full-page redirect (https://docs.stripe.com/changelog/2023-08-16/automatic-payment-methods).
NO_REDIRECTS = {"enabled": True, "allow_redirects": "never"}

# How old a webhook's signed timestamp may be (Stripe's own default): older ones are replays.
WEBHOOK_TOLERANCE_SECONDS = 300


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


def talks_to_localstripe() -> bool:
    """True when STRIPE_API_BASE points the SDK at localstripe (demo and tests), whose dialect
    needs workarounds that must never run against real Stripe."""
    return bool(current_app.config.get("STRIPE_API_BASE"))


def _call(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """Run one SDK call and sort its failures (docs/architecture.md#6-charging-safely).

    Transient (network, timeout, Stripe 5xx) -> GatewayUnavailable, and a rate limit (429) ->
    RateLimited, its subclass: try again later.
    Our credentials refused -> GatewayMisconfigured: an operator must act; nothing is failed.
    Permanent (a request Stripe will never accept) -> PaymentRejected with Stripe's code.
    Card errors pass through for the caller, for whom a decline is a result.
    """
    try:
        return fn(*args, **kwargs)
    except stripe.RateLimitError as exc:
        raise RateLimited("Stripe is rate limiting our requests. Nothing was charged.") from exc
    except (stripe.APIConnectionError, stripe.APIError) as exc:
        raise GatewayUnavailable(
            f"The payment service is unavailable ({type(exc).__name__}). Nothing was charged."
        ) from exc
    except (stripe.AuthenticationError, stripe.PermissionError) as exc:
        raise GatewayMisconfigured(f"Stripe refused our API key ({type(exc).__name__}).") from exc
    except stripe.IdempotencyError as exc:
        if exc.code == "idempotency_key_in_use":  # the same operation is in flight elsewhere
            raise GatewayUnavailable("Stripe is still processing this request. Nothing was charged.") from exc
        raise  # a bug in our bookkeeping, not the customer's doing: unexpected, never "failed"
    except stripe.InvalidRequestError as exc:
        message = exc.user_message or "Stripe refused the request."
        raise PaymentRejected(message, exc.code, exc.http_status) from exc


def create_customer(email: str, name: str, user_id: int, idempotency_key: str) -> str:
    """Create the Stripe Customer for one of our users and return its id.

    ``idempotency_key`` is the same for every attempt for this user, so an answer lost on the way
    back is answered again by Stripe with the same Customer, never a second one.
    """
    params = {"email": email, "name": name, "metadata": {"user_id": str(user_id)}}
    options = {"idempotency_key": idempotency_key}
    return str(_call(client().v1.customers.create, params=params, options=options).id)


def update_customer(
    customer_id: str,
    email: str,
    name: str,
    address: dict[str, str] | None,
    company: str | None = None,
) -> None:
    """Keep Stripe's copy of the customer's contact details in step with ours.

    Since API 2025-09-30 a Customer has ``business_name`` and ``individual_name`` besides ``name``
    (which Stripe shows on receipts and in the Dashboard). The company goes to ``business_name``
    ("" clears it), the person to ``individual_name``, and ``name`` is the company when there is
    one, else the person: the order Stripe itself uses when it fills ``name`` in.
    """
    params: dict[str, Any] = {
        "email": email,
        "name": company or name,
        "business_name": company or "",
        "individual_name": name,
    }
    if address:
        params["address"] = address
    _call(client().v1.customers.update, customer_id, params=params)


@dataclass(frozen=True)
class TaxIdInfo:
    id: str
    type: str  # Stripe's type: eu_vat, gb_vat, ch_uid, us_ein, ca_bn, au_abn, ...
    value: str


def list_customer_tax_ids(customer_id: str) -> list[TaxIdInfo]:
    """The tax IDs Stripe holds for a customer (``GET /v1/customers/{id}/tax_ids``)."""
    pages = _call(client().v1.customers.tax_ids.list, customer_id)  # pages of 10 (localstripe: no limit)
    return [_tax_id_info(tax_id) for tax_id in pages.auto_paging_iter()]


def create_customer_tax_id(customer_id: str, kind: str, value: str, idempotency_key: str) -> TaxIdInfo:
    """Add a tax ID to a customer (``POST /v1/customers/{id}/tax_ids``).

    :raises PaymentRejected: Stripe refused it (a type or value it does not accept).
    """
    tax_id = _call(
        client().v1.customers.tax_ids.create,
        customer_id,
        params={"type": kind, "value": value},
        options={"idempotency_key": idempotency_key},
    )
    return _tax_id_info(tax_id)


def delete_customer_tax_id(customer_id: str, tax_id: str) -> None:
    """Remove a tax ID from a customer; one already gone is the outcome we wanted."""
    try:
        _call(client().v1.customers.tax_ids.delete, customer_id, tax_id)
    except PaymentRejected as exc:
        if not exc.not_found:
            raise


def _tax_id_info(tax_id: Any) -> TaxIdInfo:
    data = tax_id.to_dict()
    return TaxIdInfo(id=str(data["id"]), type=str(data["type"]), value=str(data["value"]))


def create_setup_intent(customer_id: str, idempotency_key: str) -> SetupIntentInfo:
    """A SetupIntent for saving a card for later, off-session charges (docs/payments.md): no
    redirect-based methods, so confirming it never needs a return_url, and ``usage=off_session``
    so Stripe asks the bank for the authentication that lets renewals charge it without the
    customer."""
    params = {"customer": customer_id, "usage": "off_session", "automatic_payment_methods": NO_REDIRECTS}
    options = {"idempotency_key": idempotency_key}
    return _setup_info(_call(client().v1.setup_intents.create, params=params, options=options))


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
    except PaymentRejected as exc:
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
    may_exist: bool = False,
) -> IntentInfo:
    """Create an UNCONFIRMED PaymentIntent (docs/architecture.md#6-charging-safely, step 2).

    ``may_exist``: an earlier run may have created it without storing its id (a crash between
    the two). Real Stripe answers a repeated ``idempotency_key`` with the intent it created the
    first time, so the create call itself is the lookup there. localstripe ignores the key, so
    in the demo and the tests we look the intent up by ``metadata`` first. Either way an intent
    whose id was never stored was never confirmed, so nothing was charged twice.

    :raises PaymentRejected: Stripe will never accept this payment (no such customer or card).
    """
    if may_exist and talks_to_localstripe():
        found = _localstripe_intent_with_metadata(customer, metadata)
        if found is not None:
            return found
    params = {
        "amount": amount,
        "currency": currency.lower(),
        "customer": customer,
        "payment_method": payment_method,
        # No redirects (docs/payments.md, "Confirmation rules"): since API 2023-08-16 an intent has
        # automatic payment methods with redirects allowed, and every confirm would then need a
        # return_url; `payment_method_types` is gone since 2026-09-30. A card's 3-D Secure runs
        # in our page (Stripe.js), never through a redirect.
        "automatic_payment_methods": NO_REDIRECTS,
        "confirm": False,
        "metadata": metadata,
    }
    intent = _call(
        client().v1.payment_intents.create, params=params, options={"idempotency_key": idempotency_key}
    )
    return _intent_info(intent)


def confirm_payment_intent(
    intent_id: str, *, customer_present: bool, payment_method: str | None = None
) -> IntentInfo:
    """Confirm (charge) a PaymentIntent; a decline is a result, not an error.

    ``customer_present``: the customer is on our page and can answer 3-D Secure (checkout, an
    upgrade, "pay now", confirming a renewal the bank held). Otherwise the charge is
    merchant-initiated (renewals, dunning retries, the worker's collections) and is confirmed
    with ``off_session=true`` on the card saved with ``usage=off_session``: the bank may then
    decline it with ``authentication_required``, which the caller sends to the customer
    (docs/payments.md). ``payment_method``: confirm with this saved card (an intent whose last
    attempt was declined has none).

    :raises PaymentRejected: Stripe refused to confirm it (e.g. the card was detached).
    """
    params: dict[str, Any] = {} if customer_present else {"off_session": True}
    if payment_method:
        params["payment_method"] = payment_method
    try:
        return _intent_info(_call(client().v1.payment_intents.confirm, intent_id, params=params))
    except stripe.CardError:
        return retrieve_payment_intent(intent_id)


def retrieve_payment_intent(intent_id: str) -> IntentInfo:
    """:raises PaymentRejected: Stripe has no such PaymentIntent."""
    return _intent_info(_call(client().v1.payment_intents.retrieve, intent_id))


def _localstripe_intent_with_metadata(customer: str, metadata: dict[str, str]) -> IntentInfo | None:
    """localstripe only (it ignores Idempotency-Key and cannot filter by customer): page through
    every intent it holds. Demo and test data only; never reached with real Stripe."""
    pages = _call(client().v1.payment_intents.list, params={"limit": 100}).auto_paging_iter()
    for intent in pages:
        data = intent.to_dict()
        if data.get("customer") == customer and all(
            str((data.get("metadata") or {}).get(k)) == v for k, v in metadata.items()
        ):
            return _intent_info(intent)
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


def verify_signature(payload: bytes, signature: str | None, secret: str) -> None:
    """Check a webhook's ``Stripe-Signature`` (and that it is recent) over the raw body.

    Only the signature is checked here: the body is parsed by the caller as plain JSON, never
    through the SDK's objects (they turn ``*_decimal`` fields into ``Decimal``).

    :raises ValueError: no secret configured, or the signature does not verify.
    """
    if not secret:
        raise ValueError("no webhook secret configured")
    try:
        stripe.WebhookSignature.verify_header(payload, signature, secret, WEBHOOK_TOLERANCE_SECONDS)
    except (stripe.SignatureVerificationError, UnicodeDecodeError) as exc:
        raise ValueError("bad signature") from exc


def customer_is_deleted(customer_id: str) -> bool:
    """Ask Stripe whether a customer is gone (deleted, or unknown to this account).

    :raises GatewayUnavailable: Stripe could not answer; decide nothing.
    """
    try:
        customer = _call(client().v1.customers.retrieve, customer_id)
    except PaymentRejected as exc:
        if exc.not_found:
            return True
        raise
    return bool(customer.to_dict().get("deleted"))


def cancel_payment_intent(intent_id: str) -> None:
    """Cancel a PaymentIntent that must never be completed (an abandoned 3-D Secure attempt, or
    one Stripe refused to confirm)."""
    # Already succeeded or canceled: the caller re-reads the intent and records the truth.
    with contextlib.suppress(PaymentRejected):
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


@dataclass(frozen=True)
class RefundInfo:
    id: str
    status: str  # "succeeded", "pending", "requires_action", "failed", "canceled"
    amount: int
    metadata: dict[str, str] = field(default_factory=dict)
    failure_reason: str | None = None
    reason: str | None = None  # why it was made: "requested_by_customer", "duplicate", "fraud"
    payment_intent: str | None = None


@dataclass(frozen=True)
class ChargeState:
    """What Stripe holds about the money of one PaymentIntent, for reconciliation."""

    intent: IntentInfo
    amount_received: int
    amount_refunded: int  # by its charge: succeeded (and pending) refunds, never failed ones


def create_refund(
    intent_id: str,
    amount: int,
    metadata: dict[str, str],
    idempotency_key: str,
    reason: str | None = None,
) -> RefundInfo:
    """Refund ``amount`` cents of a succeeded PaymentIntent back to the card it was paid with.

    ``reason`` is Stripe's (``duplicate``, ``fraudulent``, ``requested_by_customer``): ``fraudulent``
    also puts the card and email on the account's Radar block lists.

    :raises PaymentRejected: Stripe refused (e.g. more than what is left of the charge, or
        ``charge_disputed``: the charge is under dispute).
    """
    params: dict[str, Any] = {"payment_intent": intent_id, "amount": amount, "metadata": metadata}
    if reason:
        params["reason"] = reason
    refund = _call(client().v1.refunds.create, params=params, options={"idempotency_key": idempotency_key})
    return _refund_info(refund)


def find_refund(intent_id: str, metadata: dict[str, str]) -> RefundInfo | None:
    """The refund of ``intent_id`` carrying ``metadata`` (one we asked for before an interruption)."""
    pages = _call(client().v1.refunds.list, params={"payment_intent": intent_id, "limit": 100})
    for refund in pages.auto_paging_iter():
        found = refund.to_dict().get("metadata") or {}
        if all(str(found.get(k)) == v for k, v in metadata.items()):
            return _refund_info(refund)
    return None


def list_refunds(intent_id: str, max_pages: int = 5) -> list[RefundInfo]:
    """Every refund of a PaymentIntent (newest first), read at most ``max_pages`` pages of 100.

    :raises PaymentRejected: Stripe has no such PaymentIntent.
    """
    params: dict[str, Any] = {"payment_intent": intent_id, "limit": 100}
    found: list[RefundInfo] = []
    for _page in range(max_pages):
        page = _call(client().v1.refunds.list, params=params)
        found.extend(_refund_info(refund) for refund in page.data)
        if not page.has_more or not page.data:
            break
        params["starting_after"] = page.data[-1].id
    return found


def retrieve_refund(refund_id: str) -> RefundInfo | None:
    """A refund by id; ``None`` when Stripe does not know it."""
    try:
        return _refund_info(_call(client().v1.refunds.retrieve, refund_id))
    except PaymentRejected as exc:
        if exc.not_found:
            return None
        raise


def _refund_info(refund: Any) -> RefundInfo:
    data = refund.to_dict()
    intent = data.get("payment_intent")
    return RefundInfo(
        id=data["id"],
        status=str(data.get("status") or "succeeded"),
        amount=int(data["amount"]),
        metadata={str(k): str(v) for k, v in (data.get("metadata") or {}).items()},
        failure_reason=data.get("failure_reason"),
        reason=data.get("reason"),
        payment_intent=intent["id"] if isinstance(intent, dict) else intent,
    )


def charge_state(intent_id: str) -> ChargeState:
    """A PaymentIntent with its latest charge expanded (one call): what it received, what its
    charge has refunded.

    :raises PaymentRejected: Stripe has no such PaymentIntent.
    """
    intent = _call(client().v1.payment_intents.retrieve, intent_id, params={"expand": ["latest_charge"]})
    data = intent.to_dict()
    charge = data.get("latest_charge")
    refunded = int(charge.get("amount_refunded") or 0) if isinstance(charge, dict) else 0
    received = data.get("amount_received")
    if received is None:  # localstripe's 2017 dialect has no amount_received
        received = data["amount"] if data["status"] == "succeeded" else 0
    return ChargeState(_intent_info(intent), int(received), refunded)


def detach_card(payment_method_id: str) -> None:
    """Remove a saved card from its customer at Stripe; one already gone is the outcome we wanted."""
    try:
        _call(client().v1.payment_methods.detach, payment_method_id)
    except PaymentRejected as exc:
        if not exc.not_found:
            raise


@dataclass(frozen=True)
class WebhookEndpointInfo:
    id: str
    url: str
    status: str  # "enabled" or "disabled"
    enabled_events: tuple[str, ...]  # ("*",): every event


def list_webhook_endpoints() -> list[WebhookEndpointInfo]:
    """The account's webhook endpoints (``GET /v1/webhook_endpoints``), for ``dicomportal check``.

    :raises PaymentRejected: not found, when the server has no such API (localstripe answers 404).
    :raises GatewayUnavailable: Stripe could not be reached; GatewayMisconfigured: it refused our key.
    """

    def every_endpoint() -> list[WebhookEndpointInfo]:
        try:
            pages = client().v1.webhook_endpoints.list(params={"limit": 100}).auto_paging_iter()
            return [_webhook_endpoint_info(endpoint) for endpoint in pages]
        except stripe.APIError as exc:
            if exc.http_status == 404:  # answered here, before _call sorts it as an outage
                raise PaymentRejected("no /v1/webhook_endpoints here", None, 404) from exc
            raise

    return list(_call(every_endpoint))


def _webhook_endpoint_info(endpoint: Any) -> WebhookEndpointInfo:
    data = endpoint.to_dict()
    return WebhookEndpointInfo(
        id=str(data["id"]),
        url=str(data.get("url") or ""),
        status=str(data.get("status") or ""),
        enabled_events=tuple(str(event) for event in data.get("enabled_events") or ()),
    )


@dataclass(frozen=True)
class DisputeInfo:
    """A dispute as Stripe has it now. Money is from its balance transactions: what was withdrawn
    from our balance, Stripe's dispute fee (net of any fee given back), and what was reinstated."""

    id: str
    charge: str
    payment_intent: str | None
    amount: int
    currency: str
    reason: str
    status: str
    evidence_due_by: datetime | None
    created: datetime
    funds_withdrawn: int
    fee: int
    funds_reinstated: int


@dataclass(frozen=True)
class EarlyFraudWarningInfo:
    id: str
    charge: str
    payment_intent: str | None
    fraud_type: str
    actionable: bool
    created: datetime


def _id_of(value: Any) -> str | None:
    """An expandable field's id, whether Stripe sent the id or the expanded object."""
    if isinstance(value, dict):
        value = value.get("id")
    return str(value) if value else None


def _moment(value: Any) -> datetime | None:
    return datetime.fromtimestamp(int(value), UTC) if value else None


def _retrieve_or_none(fn: Any, object_id: str) -> Any:
    """``fn(object_id)``, or None when Stripe has no such object (not ours, or forged)."""
    try:
        return _call(fn, object_id)
    except PaymentRejected as exc:
        if exc.not_found:
            return None
        raise


def find_dispute(dispute_id: str) -> DisputeInfo | None:
    """``GET /v1/disputes/{id}``: the dispute as it is now, or None when Stripe has no such dispute.

    :raises GatewayUnavailable: Stripe could not answer; decide nothing.
    """
    found = _retrieve_or_none(client().v1.disputes.retrieve, dispute_id)
    if found is None:
        return None
    data = found.to_dict()
    moves = [t for t in data.get("balance_transactions") or [] if isinstance(t, dict)]
    created = _moment(data.get("created")) or datetime.fromtimestamp(0, UTC)
    return DisputeInfo(
        id=str(data["id"]),
        charge=_id_of(data.get("charge")) or "",
        payment_intent=_id_of(data.get("payment_intent")),
        amount=int(data.get("amount") or 0),
        currency=str(data.get("currency") or "usd").upper(),
        reason=str(data.get("reason") or "general"),
        status=str(data["status"]),
        evidence_due_by=_moment((data.get("evidence_details") or {}).get("due_by")),
        created=created,
        funds_withdrawn=sum(-int(t["amount"]) for t in moves if int(t.get("amount") or 0) < 0),
        fee=sum(int(t.get("fee") or 0) for t in moves),
        funds_reinstated=sum(int(t["amount"]) for t in moves if int(t.get("amount") or 0) > 0),
    )


def find_early_fraud_warning(warning_id: str) -> EarlyFraudWarningInfo | None:
    """``GET /v1/radar/early_fraud_warnings/{id}``, or None when Stripe has no such warning.

    :raises GatewayUnavailable: Stripe could not answer; decide nothing.
    """
    found = _retrieve_or_none(client().v1.radar.early_fraud_warnings.retrieve, warning_id)
    if found is None:
        return None
    data = found.to_dict()
    return EarlyFraudWarningInfo(
        id=str(data["id"]),
        charge=_id_of(data.get("charge")) or "",
        payment_intent=_id_of(data.get("payment_intent")),
        fraud_type=str(data.get("fraud_type") or "misc"),
        actionable=bool(data.get("actionable")),
        created=_moment(data.get("created")) or datetime.fromtimestamp(0, UTC),
    )


def charge_payment_intent(charge_id: str) -> str | None:
    """The PaymentIntent that made a charge (``GET /v1/charges/{id}``), or None if there is none."""
    if not charge_id:
        return None
    charge = _retrieve_or_none(client().v1.charges.retrieve, charge_id)
    return None if charge is None else _id_of(charge.to_dict().get("payment_intent"))


@dataclass(frozen=True)
class CardAtStripe:
    """A saved card as Stripe has it now; ``customer`` is None once it was detached."""

    customer: str | None
    card: Card


def find_card(payment_method_id: str) -> CardAtStripe | None:
    """A PaymentMethod re-read from Stripe; ``None`` when Stripe does not know it (deleted)."""
    try:
        pm = _call(client().v1.payment_methods.retrieve, payment_method_id)
    except PaymentRejected as exc:
        if exc.not_found:
            return None
        raise
    data = pm.to_dict()
    card = data.get("card") or {}
    customer = data.get("customer")
    return CardAtStripe(
        customer=customer["id"] if isinstance(customer, dict) else customer,
        card=Card(
            data["id"],
            str(card.get("brand") or ""),
            str(card.get("last4") or ""),
            int(card.get("exp_month") or 0),
            int(card.get("exp_year") or 0),
        ),
    )
