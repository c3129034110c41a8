"""Collecting invoices safely (docs/architecture.md#6-charging-safely) and dunning.

Each attempt: (1) a Payment row (pending) is committed; (2) an unconfirmed PaymentIntent is created
with metadata {invoice_id, payment_id} and Idempotency-Key ``<installation>:payment-<id>``
(docs/payments.md), and its id committed; (3) it is confirmed (off-session unless the customer is
on our page); (4) the outcome is recorded with a compare-and-set on the row's status, so the
synchronous path, a webhook and the reconcile job can all report the same outcome and only the
first one has an effect. A crash anywhere leaves a pending row that :func:`reconcile_pending`
finishes by re-reading the PaymentIntent: an invoice is never charged twice and no success is lost.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, bindparam, func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from dicomportal import clock
from dicomportal.billing import gateway, outcomes
from dicomportal.billing.errors import ChargeInProgress, PaymentRejected
from dicomportal.billing.installation import idempotency_key
from dicomportal.extensions import db
from dicomportal.models import (
    IN_FLIGHT,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Price,
    Subscription,
    User,
)

log = logging.getLogger(__name__)

AUTHENTICATION_REQUIRED = "authentication_required"

INTENT_STATUS = {
    "succeeded": PaymentStatus.SUCCEEDED,
    "requires_action": PaymentStatus.REQUIRES_ACTION,
    "requires_payment_method": PaymentStatus.FAILED,
    "canceled": PaymentStatus.FAILED,
}


_DEFAULT_CARD = select(PaymentMethod).where(
    PaymentMethod.user_id == bindparam("user_id"),
    PaymentMethod.is_default.is_(True),
    PaymentMethod.detached_at.is_(None),
)


def default_card(user_id: int) -> PaymentMethod | None:
    """The card renewals are charged to."""
    return db.session.scalar(_DEFAULT_CARD, {"user_id": user_id})


def charge_invoice(invoice_id: int, *, customer_present: bool) -> Payment:
    """Try to collect an open invoice with the customer's default card (steps 1-4).

    :raises ChargeInProgress: another attempt on this invoice is in flight.
    :raises GatewayUnavailable: Stripe did not answer; the payment stays pending for reconcile.
    """
    invoice = db.session.get(Invoice, invoice_id)
    if invoice is None or invoice.status != InvoiceStatus.OPEN:
        raise ValueError(f"invoice {invoice_id} is not open")
    payment = open_attempt(invoice)
    db.session.commit()
    return drive(payment.id, fresh=True, customer_present=customer_present)


def first_attempt(invoice: Invoice) -> Payment | None:
    """The first attempt of an invoice finalized in this transaction, or None when nothing is due
    (a zero total is paid at finalization). No other attempt can exist yet, so no lookup is made."""
    if invoice.status != InvoiceStatus.OPEN:
        return None
    payment = _new_payment(invoice, attempt=1)
    db.session.add(payment)
    return payment


def open_attempt(invoice: Invoice) -> Payment:
    """Step 1: a pending Payment for ``invoice`` with the default card, in the caller's transaction.

    Callers commit it together with whatever made the invoice due (a renewal commits the invoice
    and its first attempt at once), so no open invoice ever exists without a way to be collected.

    :raises ChargeInProgress: an attempt on this invoice is already in flight.
    """
    attempt = (
        db.session.scalar(select(func.max(Payment.attempt)).where(Payment.invoice_id == invoice.id)) or 0
    ) + 1
    payment = _new_payment(invoice, attempt)
    try:
        with db.session.begin_nested():
            db.session.add(payment)
    except IntegrityError as exc:
        raise ChargeInProgress("A payment for this invoice is already being processed.") from exc
    return payment


def _new_payment(invoice: Invoice, attempt: int) -> Payment:
    card = default_card(invoice.user_id)
    return Payment(
        invoice_id=invoice.id,
        attempt=attempt,
        status=PaymentStatus.PENDING,
        amount_cents=invoice.amount_due_cents,
        currency=invoice.currency,
        stripe_payment_method_id=card.stripe_payment_method_id if card else None,
    )


@dataclass(frozen=True)
class _Attempt:
    """What Stripe needs to hear about a payment, read in one query, so no transaction stays open
    while Stripe answers (which takes hundreds of milliseconds)."""

    payment_id: int
    invoice_id: int
    amount_cents: int
    currency: str
    customer: str | None
    payment_method: str | None
    intent_id: str | None

    @classmethod
    def read(cls, payment_id: int) -> _Attempt:
        row = db.session.execute(
            select(
                Payment.id,
                Payment.invoice_id,
                Payment.amount_cents,
                Payment.currency,
                User.stripe_customer_id,
                Payment.stripe_payment_method_id,
                Payment.stripe_payment_intent_id,
            )
            .join(Invoice, Invoice.id == Payment.invoice_id)
            .join(User, User.id == Invoice.user_id)
            .where(Payment.id == payment_id)
        ).one()
        db.session.commit()  # end the read transaction before talking to Stripe
        return cls(*row)


def drive(payment_id: int, fresh: bool = False, *, customer_present: bool) -> Payment:
    """Steps 2-4 for a pending payment, from wherever a previous run stopped.

    ``fresh``: the row was committed a moment ago by this process, so no intent can exist yet.
    ``customer_present``: the customer is on our page (checkout, upgrade, pay now) and can answer
    3-D Secure; otherwise the worker charges on its own and confirms off-session (docs/payments.md).
    A request Stripe will never accept (no such customer or card) fails the attempt with Stripe's
    code, and the invoice goes into dunning like after a decline.

    :raises GatewayUnavailable: Stripe did not answer; the row stays pending.
    """
    attempt = _Attempt.read(payment_id)
    if attempt.intent_id is None and not (attempt.customer and attempt.payment_method):
        return record_outcome(payment_id, PaymentStatus.FAILED, code="no_card", message="No card on file.")
    try:
        intent = _intent_for(attempt, fresh)
        if intent.status == "requires_confirmation":
            intent = _confirm(intent.id, customer_present)
    except PaymentRejected as exc:
        db.session.rollback()
        log.warning("payment %s (invoice %s) refused by Stripe: %s", payment_id, attempt.invoice_id, exc.code)
        return record_outcome(payment_id, PaymentStatus.FAILED, code=exc.code, message=str(exc))
    return record_intent(payment_id, intent)


def _intent_for(attempt: _Attempt, fresh: bool) -> gateway.IntentInfo:
    """Step 2: the payment's PaymentIntent, created (and its id committed) if it has none."""
    if attempt.intent_id is not None:
        return gateway.retrieve_payment_intent(attempt.intent_id)
    intent = gateway.create_payment_intent(
        amount=attempt.amount_cents,
        currency=attempt.currency,
        customer=attempt.customer or "",
        payment_method=attempt.payment_method or "",
        metadata={"invoice_id": str(attempt.invoice_id), "payment_id": str(attempt.payment_id)},
        idempotency_key=idempotency_key("payment", attempt.payment_id),
        may_exist=not fresh,
    )
    db.session.execute(
        update(Payment)
        .where(Payment.id == attempt.payment_id, Payment.stripe_payment_intent_id.is_(None))
        .values(stripe_payment_intent_id=intent.id, updated_at=clock.now()),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    return intent


def _confirm(intent_id: str, customer_present: bool) -> gateway.IntentInfo:
    """Step 3. If Stripe refuses to confirm, cancel the intent so it can never be charged later."""
    try:
        return gateway.confirm_payment_intent(intent_id, customer_present=customer_present)
    except PaymentRejected:
        gateway.cancel_payment_intent(intent_id)
        raise


def intent_status(intent: gateway.IntentInfo) -> PaymentStatus | None:
    """Our payment status for a PaymentIntent's state, or None while it is still in motion.

    An off-session charge the bank declined with ``authentication_required`` is back in
    ``requires_payment_method`` at Stripe, but it is no failure of the card: the customer must
    confirm that same intent on our page (docs/payments.md), so it waits as REQUIRES_ACTION.
    """
    if intent.status == "requires_payment_method" and intent.failure_code == AUTHENTICATION_REQUIRED:
        return PaymentStatus.REQUIRES_ACTION
    return INTENT_STATUS.get(intent.status)


def record_intent(payment_id: int, intent: gateway.IntentInfo) -> Payment:
    """Step 4 from a PaymentIntent's state; states still in motion change nothing."""
    status = intent_status(intent)
    if status is None:
        return db.session.get_one(Payment, payment_id)
    return record_outcome(
        payment_id,
        status,
        code=intent.failure_code,
        message=intent.failure_message,
        client_secret=intent.client_secret,
        amount=intent.amount,
    )


def record_outcome(
    payment_id: int,
    status: PaymentStatus,
    *,
    code: str | None = None,
    message: str | None = None,
    client_secret: str | None = None,
    amount: int | None = None,
) -> Payment:
    """Move a payment out of flight exactly once, then let the invoice and subscription follow."""
    allowed = [PaymentStatus.PENDING.value] if status == PaymentStatus.REQUIRES_ACTION else list(IN_FLIGHT)
    values: dict[str, object] = {"status": status, "updated_at": clock.now()}
    if status == PaymentStatus.FAILED:
        values |= {
            "failure_code": code or "card_declined",
            "failure_message": message or "Your card was declined.",
        }
    if status == PaymentStatus.REQUIRES_ACTION:
        values |= {"client_secret": client_secret, "failure_code": code, "failure_message": None}
    result = db.session.execute(
        update(Payment).where(Payment.id == payment_id, Payment.status.in_(allowed)).values(**values),
        execution_options={"synchronize_session": False},
    )
    changed = cast(CursorResult[Any], result).rowcount
    payment = _with_invoice_and_subscription(payment_id)
    if changed:
        outcomes.payment_settled(payment, amount if amount is not None else payment.amount_cents)
    commit_keeping_loaded()
    return payment


def commit_keeping_loaded() -> None:
    """Commit without expiring the session's objects: they hold exactly what was just committed,
    so callers reading the outcome need not query it again."""
    session = db.session()
    session.expire_on_commit = False
    try:
        session.commit()
    finally:
        session.expire_on_commit = True


def _with_invoice_and_subscription(payment_id: int) -> Payment:
    """The payment with everything an outcome touches (invoice, customer, subscription, plan) in
    one query, fresh from the database."""
    query = (
        select(Payment)
        .where(Payment.id == payment_id)
        .options(
            joinedload(Payment.invoice).options(
                joinedload(Invoice.user),
                joinedload(Invoice.subscription).joinedload(Subscription.price).joinedload(Price.plan),
            )
        )
        .execution_options(populate_existing=True)
    )
    return db.session.scalars(query).one()


def cancel_action_required(invoice_id: int) -> None:
    """Abandon an attempt waiting for 3-D Secure (e.g. the customer chose another card)."""
    waiting = db.session.scalars(
        select(Payment).where(
            Payment.invoice_id == invoice_id, Payment.status == PaymentStatus.REQUIRES_ACTION
        )
    ).all()
    for payment in waiting:
        intent_id = payment.stripe_payment_intent_id or ""
        gateway.cancel_payment_intent(intent_id)
        intent = gateway.retrieve_payment_intent(intent_id)
        if intent.status != "canceled":  # it succeeded meanwhile: record that, never drop it
            record_intent(payment.id, intent)
            continue
        db.session.execute(
            update(Payment)
            .where(Payment.id == payment.id, Payment.status == PaymentStatus.REQUIRES_ACTION)
            .values(status=PaymentStatus.CANCELED, updated_at=clock.now())
        )
        db.session.commit()


def needs_confirming_on_session(payment: Payment) -> bool:
    """A renewal the bank declined off-session until the customer authenticates: our page must
    confirm the intent with the customer present before Stripe.js can open the bank's dialog."""
    return payment.status == PaymentStatus.REQUIRES_ACTION and payment.failure_code == AUTHENTICATION_REQUIRED


def confirm_on_session(payment_id: int) -> Payment:
    """Confirm a waiting payment's SAME PaymentIntent with the customer present and the card it
    was tried with; the bank then asks for 3-D Secure (the intent is ``requires_action`` and the
    page opens the dialog), or charges it at once, or declines it (dunning goes on).

    :raises GatewayUnavailable: Stripe did not answer; nothing changed.
    """
    payment = db.session.get_one(Payment, payment_id)
    intent_id, card = payment.stripe_payment_intent_id or "", payment.stripe_payment_method_id
    db.session.commit()
    intent = gateway.retrieve_payment_intent(intent_id)
    if intent.status == "requires_payment_method":
        try:
            intent = gateway.confirm_payment_intent(intent_id, customer_present=True, payment_method=card)
        except PaymentRejected as exc:  # the card was removed meanwhile: Stripe will never take it
            return record_outcome(payment_id, PaymentStatus.FAILED, code=exc.code, message=str(exc))
    if intent.status == "requires_action":
        db.session.execute(
            update(Payment)
            .where(Payment.id == payment_id, Payment.status == PaymentStatus.REQUIRES_ACTION)
            .values(client_secret=intent.client_secret, failure_code=None, updated_at=clock.now()),
            execution_options={"synchronize_session": False},
        )
        db.session.commit()
        return db.session.get_one(Payment, payment_id, populate_existing=True)
    if intent.status == "requires_payment_method" and intent.failure_code != AUTHENTICATION_REQUIRED:
        return record_outcome(
            payment_id, PaymentStatus.FAILED, code=intent.failure_code, message=intent.failure_message
        )
    return record_intent(payment_id, intent)


def waiting_payment(invoice_id: int) -> Payment | None:
    """The invoice's attempt waiting for the customer's bank, if any."""
    return db.session.scalar(
        select(Payment).where(
            Payment.invoice_id == invoice_id, Payment.status == PaymentStatus.REQUIRES_ACTION
        )
    )


def follow_up_waiting(payment_id: int) -> str:
    """A dunning day for a payment waiting for authentication (docs/payments.md).

    Stripe is asked first (the customer may have confirmed it and the event be late): a settled
    intent is recorded. Otherwise the customer is reminded, or, after the last day, the intent is
    canceled at Stripe (so it can never be charged later) and the payment fails, which ends the
    subscription like an unpaid renewal. Returns ``settled``, ``reminded`` or ``ended``.

    :raises GatewayUnavailable: Stripe did not answer; nothing changed.
    """
    payment = _with_invoice_and_subscription(payment_id)
    intent_id = payment.stripe_payment_intent_id or ""
    db.session.commit()
    intent = gateway.retrieve_payment_intent(intent_id)
    if intent_status(intent) != PaymentStatus.REQUIRES_ACTION:
        record_intent(payment_id, intent)
        return "settled"
    payment = _with_invoice_and_subscription(payment_id)
    if payment.status != PaymentStatus.REQUIRES_ACTION:  # settled by another process meanwhile
        db.session.rollback()
        return "settled"
    if outcomes.follow_up_waiting(payment.invoice, payment):
        db.session.commit()
        return "reminded"
    db.session.rollback()
    gateway.cancel_payment_intent(intent_id)
    intent = gateway.retrieve_payment_intent(intent_id)
    if intent.status != "canceled":  # confirmed at the last moment: record that, never drop it
        record_intent(payment_id, intent)
        return "settled"
    record_outcome(
        payment_id,
        PaymentStatus.FAILED,
        code=AUTHENTICATION_REQUIRED,
        message="The payment was not confirmed with the bank before the last reminder.",
    )
    return "ended"
