"""Disputes and early fraud warnings: what Stripe tells us about payments the bank questions.

Events are hints (docs/architecture.md#7-webhooks): each handler re-reads the dispute or warning from
Stripe and records it by its Stripe id, so replayed, duplicated and out-of-order events converge on
Stripe's current state. Each change of status is written to the audit log and emailed to support
once: the status support was told about is moved with one conditional UPDATE (compare-and-set), so
two deliveries processed at the same moment cannot both send it.

What a dispute means for the customer: while it is open the invoice shows "Disputed", service
continues (Stripe may still rule for us) and refunds are refused (Stripe refuses them too,
``charge_disputed``). A lost dispute is recorded on the invoice as money lost (the amount and
Stripe's fee); a won one restores it. The subscription is never ended automatically: staff decide.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any, cast

from sqlalchemy import CursorResult, or_, select, update
from sqlalchemy.exc import IntegrityError

from dicomportal import clock
from dicomportal.billing import audit, gateway, notices, refunds
from dicomportal.billing.errors import BillingError
from dicomportal.extensions import db
from dicomportal.models import (
    OPEN_DISPUTE_STATUSES,
    CreditNote,
    Dispute,
    DisputeStatus,
    EarlyFraudWarning,
    Payment,
)

log = logging.getLogger(__name__)

# Stripe's reason for a refund that answers an early fraud warning (it also blocks the card).
FRAUD_REFUND_REASON = "fraudulent"
FRAUD_CREDIT_NOTE_REASON = "Fraudulent payment reported by the card issuer"


class FraudWarningRefused(BillingError):
    """The early fraud warning cannot be answered with a refund (unknown, answered, not actionable)."""


# --- webhooks ------------------------------------------------------------------------------------


def dispute_changed(obj: dict[str, Any]) -> None:
    """``charge.dispute.*``: re-read the dispute from Stripe and record what it says now."""
    dispute_id = obj.get("id")
    if not isinstance(dispute_id, str) or not dispute_id:
        return
    info = gateway.find_dispute(dispute_id)
    if info is None:
        log.warning("dispute event for %s, which Stripe does not have: ignored", dispute_id)
        return
    record_dispute(info)


def early_fraud_warning_changed(obj: dict[str, Any]) -> None:
    """``radar.early_fraud_warning.*``: re-read the warning from Stripe and record it."""
    warning_id = obj.get("id")
    if not isinstance(warning_id, str) or not warning_id:
        return
    info = gateway.find_early_fraud_warning(warning_id)
    if info is None:
        log.warning("early fraud warning event for %s, which Stripe does not have: ignored", warning_id)
        return
    record_early_fraud_warning(info)


def _our_payment(intent_id: str | None, charge_id: str) -> Payment | None:
    """Our payment made by this PaymentIntent (or by the charge's, when Stripe names only the charge)."""
    intent_id = intent_id or gateway.charge_payment_intent(charge_id)
    if not intent_id:
        return None
    return db.session.scalar(select(Payment).where(Payment.stripe_payment_intent_id == intent_id))


def _find_or_add(model: Any, key: Any, value: str, **values: Any) -> Any:
    """The row whose unique ``key`` is ``value``, inserted with ``values`` if there is none yet
    (a concurrent delivery that inserted it first wins; its row is returned)."""
    row = db.session.scalar(select(model).where(key == value))
    if row is not None:
        return row
    row = model(**values)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError:
        row = db.session.scalar(select(model).where(key == value))
    return row


def _claim_notice(model: Any, row_id: int, state: str) -> bool:
    """Move the state support was told about to ``state``; False when it already was (no email)."""
    moved = db.session.execute(
        update(model)
        .where(model.id == row_id, or_(model.notified_status.is_(None), model.notified_status != state))
        .values(notified_status=state)
        .execution_options(synchronize_session=False)
    )
    return cast(CursorResult[Any], moved).rowcount == 1


def record_dispute(info: gateway.DisputeInfo) -> Dispute | None:
    """Record a dispute as Stripe has it (committed); None when it is not about one of our payments.

    The invoice is marked disputed while it is open; a lost one records what it cost on the invoice.
    """
    payment = _our_payment(info.payment_intent, info.charge)
    if payment is None:
        log.info("dispute %s is about charge %s, not one of our payments: ignored", info.id, info.charge)
        return None
    try:
        status = DisputeStatus(info.status)
    except ValueError as exc:  # stored on the event (and retried by Stripe) for an operator to see
        raise ValueError(f"dispute {info.id} has status {info.status!r}, unknown to this version") from exc
    row: Dispute = _find_or_add(
        Dispute,
        Dispute.stripe_dispute_id,
        info.id,
        stripe_dispute_id=info.id,
        stripe_charge_id=info.charge,
        amount_cents=info.amount,
        currency=info.currency,
        reason=info.reason,
        status=status,
        created_at=info.created,
    )
    _copy_dispute(info, payment, row)
    invoice = payment.invoice
    invoice.dispute_status, invoice.amount_lost_cents = status.value, row.lost_cents
    db.session.flush()
    if _claim_notice(Dispute, row.id, status.value):
        audit.record(
            f"dispute.{status.value}",
            invoice.user_id,
            row,
            invoice=invoice.number,
            stripe_dispute=info.id,
            amount_cents=info.amount,
            reason=info.reason,
            lost_cents=row.lost_cents or None,
            source="stripe",
        )
        notices.dispute_changed(row, invoice)
    db.session.commit()
    return row


def _copy_dispute(info: gateway.DisputeInfo, payment: Payment, row: Dispute) -> None:
    """Make ``row`` say what Stripe says now (closed_at: when we first saw it closed)."""
    row.stripe_charge_id, row.stripe_payment_intent_id = info.charge, payment.stripe_payment_intent_id
    row.payment_id, row.invoice_id = payment.id, payment.invoice_id
    row.amount_cents, row.currency, row.reason = info.amount, info.currency, info.reason
    row.status, row.evidence_due_by = DisputeStatus(info.status), info.evidence_due_by
    row.funds_withdrawn_cents, row.fee_cents = info.funds_withdrawn, info.fee
    row.funds_reinstated_cents = info.funds_reinstated
    row.closed_at = None if row.is_open else (row.closed_at or clock.now())


def record_early_fraud_warning(info: gateway.EarlyFraudWarningInfo) -> EarlyFraudWarning | None:
    """Record an early fraud warning as Stripe has it (committed); None when not about our payment."""
    payment = _our_payment(info.payment_intent, info.charge)
    if payment is None:
        log.info("early fraud warning %s is about charge %s, not ours: ignored", info.id, info.charge)
        return None
    row: EarlyFraudWarning = _find_or_add(
        EarlyFraudWarning,
        EarlyFraudWarning.stripe_id,
        info.id,
        stripe_id=info.id,
        stripe_charge_id=info.charge,
        fraud_type=info.fraud_type,
        actionable=info.actionable,
        created_at=info.created,
    )
    row.stripe_charge_id, row.stripe_payment_intent_id = info.charge, payment.stripe_payment_intent_id
    row.payment_id, row.fraud_type, row.actionable = payment.id, info.fraud_type, info.actionable
    db.session.flush()
    if _claim_notice(EarlyFraudWarning, row.id, row.state):
        invoice = payment.invoice
        audit.record(
            f"early_fraud_warning.{row.state}",
            invoice.user_id,
            row,
            invoice=invoice.number,
            stripe_early_fraud_warning=info.id,
            fraud_type=info.fraud_type,
            source="stripe",
        )
        notices.early_fraud_warning_changed(row, invoice)
    db.session.commit()
    return row


# --- what support sees and does --------------------------------------------------------------------


def open_disputes() -> list[Dispute]:
    """Open disputes of our payments, the soonest evidence deadline first."""
    query = (
        select(Dispute)
        .where(Dispute.status.in_(OPEN_DISPUTE_STATUSES), Dispute.invoice_id.is_not(None))
        .order_by(Dispute.evidence_due_by.is_(None), Dispute.evidence_due_by, Dispute.id)
    )
    return list(db.session.scalars(query))


def days_left(dispute: Dispute, at: datetime | None = None) -> int | None:
    """Whole days from ``at`` (the app's clock) to the evidence deadline: 0 on the day, negative after."""
    if dispute.evidence_due_by is None:
        return None
    return (dispute.evidence_due_by.date() - (at or clock.now()).date()).days


def actionable_fraud_warnings() -> list[EarlyFraudWarning]:
    """Early fraud warnings support can still answer with a refund, oldest first."""
    query = (
        select(EarlyFraudWarning)
        .where(EarlyFraudWarning.actionable.is_(True), EarlyFraudWarning.credit_note_id.is_(None))
        .order_by(EarlyFraudWarning.created_at, EarlyFraudWarning.id)
    )
    return list(db.session.scalars(query))


def refund_fraud_warning(stripe_id: str, actor_id: int | None) -> CreditNote:
    """Answer an early fraud warning with a full refund of its invoice (through
    ``refunds.refund_invoice``, Stripe reason ``fraudulent``); returns the credit note (committed).

    Stripe is asked first whether the warning is still actionable (a dispute may have arrived).

    :raises FraudWarningRefused: no such warning, already answered, or no longer actionable.
    :raises RefundRefused: the refund itself was refused (nothing was refunded).
    """
    stripe_id = stripe_id.strip()
    row = db.session.scalar(select(EarlyFraudWarning).where(EarlyFraudWarning.stripe_id == stripe_id))
    if row is None or row.payment is None:
        raise FraudWarningRefused(f"There is no early fraud warning {stripe_id} about one of our payments.")
    if row.credit_note_id is not None:
        note = db.session.get_one(CreditNote, row.credit_note_id)
        raise FraudWarningRefused(
            f"Early fraud warning {stripe_id} was answered already (credit note {note.number})."
        )
    info = gateway.find_early_fraud_warning(stripe_id)
    if info is not None:
        row = record_early_fraud_warning(info) or row
    payment = row.payment
    if not row.actionable or payment is None:
        raise FraudWarningRefused(
            f"Early fraud warning {stripe_id} is no longer actionable at Stripe (the payment was disputed "
            "or refunded already). Nothing was refunded."
        )
    note = refunds.refund_invoice(
        payment.invoice_id, None, FRAUD_CREDIT_NOTE_REASON, actor_id, stripe_reason=FRAUD_REFUND_REASON
    )
    row.credit_note_id = note.id
    audit.record(
        "early_fraud_warning.refunded",
        note.user_id,
        row,
        actor_id=actor_id,
        invoice=note.invoice.number,
        credit_note=note.number,
        amount_cents=note.total_cents,
    )
    db.session.commit()
    return note
