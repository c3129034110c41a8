"""Verified Stripe events -> handlers (ARCHITECTURE.md section 7).

The event is stored first (a replay is recognised by its id and ignored); handlers read only the
fields every API version shares and re-read the object from Stripe before acting, so replayed and
out-of-order events converge on the truth.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dicomportal.billing import cards, clock, collection, gateway
from dicomportal.extensions import db
from dicomportal.models import Payment, StripeEvent


def receive(event: dict[str, Any]) -> bool:
    """Store and process one verified event; False if it was seen before.

    :raises Exception: a handler failed; the error is stored and the caller answers 500 so Stripe retries.
    """
    row = StripeEvent(stripe_event_id=str(event["id"]), type=str(event["type"]), payload=event)
    db.session.add(row)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        seen = db.session.scalar(select(StripeEvent).where(StripeEvent.stripe_event_id == str(event["id"])))
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
        failed = db.session.get_one(StripeEvent, row_id)
        failed.error = traceback.format_exc()[-4000:]
        db.session.commit()
        raise
    done = db.session.get_one(StripeEvent, row_id)
    done.processed_at, done.error = clock.now(), None
    db.session.commit()


def payment_intent_changed(obj: dict[str, Any]) -> None:
    """payment_intent.succeeded / payment_failed / requires_action: re-read it and record the truth."""
    intent_id = str(obj["id"])
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
    cards.forget_customer(str(obj["id"]))
    db.session.commit()


HANDLERS: dict[str, Callable[[dict[str, Any]], None]] = {
    "payment_intent.succeeded": payment_intent_changed,
    "payment_intent.payment_failed": payment_intent_changed,
    "payment_intent.requires_action": payment_intent_changed,
    "payment_intent.canceled": payment_intent_changed,
    "customer.deleted": customer_deleted,
}
