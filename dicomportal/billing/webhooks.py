"""Verified Stripe events -> handlers (docs/architecture.md#7-webhooks).

The event is stored first (a replay is recognised by its id and ignored); handlers read only the
fields every API version shares and re-read the object from Stripe before acting, so replayed and
out-of-order events converge on the truth.
"""

from __future__ import annotations

import json
import logging
import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dicomportal import clock
from dicomportal.billing import cards, collection, disputes, gateway, stripe_refunds
from dicomportal.extensions import db
from dicomportal.models import Payment, StripeEvent

log = logging.getLogger(__name__)


class RejectedEvent(ValueError):
    """Not a verified Stripe event (bad signature, or a signed body that is not an event): 400."""


def verified_event(payload: bytes, signature: str | None, secret: str) -> dict[str, Any]:
    """Check the signature over the raw body, then parse it as plain JSON and check its shape.

    :raises RejectedEvent: the signature does not verify, or the body is not an event object
        (a JSON array or string, no ``id``/``type``, no ``data.object``).
    """
    try:
        gateway.verify_signature(payload, signature, secret)
    except ValueError as exc:
        raise RejectedEvent("invalid signature") from exc
    try:
        event = json.loads(payload)
    except ValueError as exc:  # UnicodeDecodeError is a ValueError too
        raise RejectedEvent("the body is not JSON") from exc
    if not (
        isinstance(event, dict)
        and isinstance(event.get("id"), str)
        and event["id"]
        and isinstance(event.get("type"), str)
        and isinstance(event.get("data"), dict)
        and isinstance(event["data"].get("object"), dict)
    ):
        raise RejectedEvent("the body is not a Stripe event")
    return event


def receive(payload: bytes, event: dict[str, Any]) -> bool:
    """Store one verified event as received and process it; False if it was seen before.

    Every type is acknowledged: types without a handler are stored and marked processed.

    :raises Exception: a handler failed; the error is stored and the caller answers 500 so Stripe retries.
    """
    event_id = str(event["id"])
    row = StripeEvent(stripe_event_id=event_id, type=str(event["type"])[:100], payload=payload.decode())
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        seen = db.session.scalar(select(StripeEvent).where(StripeEvent.stripe_event_id == event_id))
        if seen is None or seen.processed_at is not None:
            return False  # a replay of an event we already processed
        row = seen  # stored before but its processing failed: Stripe's retry runs it again
    _process(row.id, event)
    return True


def _process(row_id: int, event: dict[str, Any]) -> None:
    handler = HANDLERS.get(str(event["type"]))
    try:
        if handler is not None:
            handler(event["data"]["object"])
    except Exception:
        db.session.rollback()
        log.exception("webhook event %s (%s) failed; Stripe will retry it", event["id"], event["type"])
        failed = db.session.get_one(StripeEvent, row_id)
        failed.error = traceback.format_exc()[-4000:]
        db.session.commit()
        raise
    done = db.session.get_one(StripeEvent, row_id)
    done.processed_at, done.error = clock.now(), None
    db.session.commit()


def payment_intent_changed(obj: dict[str, Any]) -> None:
    """payment_intent.succeeded / payment_failed / requires_action: re-read it and record the truth."""
    intent_id = obj.get("id")
    if not isinstance(intent_id, str):
        return
    payment = db.session.scalar(select(Payment).where(Payment.stripe_payment_intent_id == intent_id))
    if payment is None:
        payment_id = str((obj.get("metadata") or {}).get("payment_id") or "")
        payment = db.session.get(Payment, int(payment_id)) if payment_id.isdigit() else None
    if payment is None or payment.stripe_payment_intent_id not in (None, intent_id):
        return  # not one of ours, or an intent we never confirmed
    intent = gateway.retrieve_payment_intent(intent_id)
    if payment.stripe_payment_intent_id is None:
        payment.stripe_payment_intent_id = intent_id
        db.session.commit()
    collection.record_intent(payment.id, intent)


def customer_deleted(obj: dict[str, Any]) -> None:
    """customer.deleted: forget the customer's cards, but only once Stripe confirms it is gone
    (an event is a hint; a forged or stale one must not make us forget a working card)."""
    customer_id = obj.get("id")
    if not isinstance(customer_id, str) or not cards.is_our_customer(customer_id):
        return
    if not gateway.customer_is_deleted(customer_id):
        log.warning("customer.deleted for %s, but Stripe still has the customer: ignored", customer_id)
        return
    cards.forget_customer(customer_id)
    db.session.commit()


def charge_refunded(obj: dict[str, Any]) -> None:
    """charge.refunded: re-read the refunds of the charge's PaymentIntent and book each one made
    outside the portal (a credit note each, once)."""
    intent_id = obj.get("payment_intent")
    if isinstance(intent_id, dict):
        intent_id = intent_id.get("id")
    if isinstance(intent_id, str) and intent_id:
        stripe_refunds.sync_intent(intent_id)


def refund_changed(obj: dict[str, Any]) -> None:
    """refund.created / updated / failed: re-read the refund to find its PaymentIntent, then bring
    all of that PaymentIntent's refunds in step (booked once, or reversed when failed)."""
    refund_id = obj.get("id")
    if not isinstance(refund_id, str) or not refund_id:
        return
    refund = gateway.retrieve_refund(refund_id)
    if refund is not None and refund.payment_intent:
        stripe_refunds.sync_intent(refund.payment_intent)


def payment_method_changed(obj: dict[str, Any]) -> None:
    """payment_method.detached / updated / automatically_updated: re-read the card from Stripe and
    mirror it (expiry and last 4 refreshed, or marked detached)."""
    payment_method_id = obj.get("id")
    if isinstance(payment_method_id, str) and payment_method_id:
        cards.refresh_from_stripe(payment_method_id)


HANDLERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "charge.refunded": charge_refunded,
    "refund.created": refund_changed,
    "refund.updated": refund_changed,
    "refund.failed": refund_changed,
    "payment_method.detached": payment_method_changed,
    "payment_method.updated": payment_method_changed,
    "payment_method.automatically_updated": payment_method_changed,
    "payment_intent.succeeded": payment_intent_changed,
    "payment_intent.payment_failed": payment_intent_changed,
    "payment_intent.requires_action": payment_intent_changed,
    "payment_intent.canceled": payment_intent_changed,
    "payment_intent.processing": payment_intent_changed,
    "customer.deleted": customer_deleted,
    "charge.dispute.created": disputes.dispute_changed,
    "charge.dispute.updated": disputes.dispute_changed,
    "charge.dispute.closed": disputes.dispute_changed,
    "charge.dispute.funds_withdrawn": disputes.dispute_changed,
    "charge.dispute.funds_reinstated": disputes.dispute_changed,
    "radar.early_fraud_warning.created": disputes.early_fraud_warning_changed,
    "radar.early_fraud_warning.updated": disputes.early_fraud_warning_changed,
}
