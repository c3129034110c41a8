"""Refunds: money back to the card an invoice was paid with, documented by a numbered credit note.

Safe against concurrency without holding a lock while Stripe answers: the amount is first
reserved on the invoice with one conditional UPDATE (``refunded + amount <= paid``), committed
together with a pending credit note; only then is Stripe asked. Two refunds started at the same
moment cannot both reserve more than was paid, on SQLite and PostgreSQL alike. A refund Stripe
refuses releases its reservation; one whose answer was lost stays pending and is finished by the
worker (``finish_pending_refunds``) or the next refund of the same invoice, once it is a few
minutes old (the refund is found at Stripe by its credit note's id).

Credit notes are numbered when the refund has gone through, in their own gapless yearly series
(``CN-2026-000001``), under the series row's lock like invoices.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, and_, exists, func, select, update

from dicomportal import clock
from dicomportal.billing import audit, gateway, notices
from dicomportal.billing.errors import BillingError, PaymentRejected
from dicomportal.billing.installation import idempotency_key
from dicomportal.billing.invoicing import next_number
from dicomportal.billing.money import format_money
from dicomportal.billing.proration import divide_half_up
from dicomportal.extensions import db
from dicomportal.models import (
    CreditNote,
    CreditNoteStatus,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    User,
)

log = logging.getLogger(__name__)

# A pending credit note younger than this may still be waiting for Stripe in another process.
FINISH_AFTER = timedelta(minutes=2)

# The credit notes whose amount counts as refunded on their invoice (reserved or issued).
COUNTED = (CreditNoteStatus.PENDING, CreditNoteStatus.ISSUED)


class RefundRefused(BillingError):
    """The refund cannot be made (nothing paid, more than what remains, Stripe refused)."""


class ChargeDisputed(RefundRefused):
    """The payment is under dispute, or was charged back: Stripe refuses to refund it
    (``charge_disputed``), and the bank already returns the money if the dispute is lost."""

    code = "charge_disputed"


def find_invoice(reference: str) -> Invoice:
    """An invoice by its number (``DP-2026-000001``) or database id.

    :raises RefundRefused: there is no such invoice.
    """
    invoice: Invoice | None = db.session.scalar(select(Invoice).where(Invoice.number == reference.strip()))
    if invoice is None and reference.strip().isdigit() and int(reference) < 2**31:
        invoice = db.session.get(Invoice, int(reference))
    if invoice is None or invoice.number is None:
        raise RefundRefused(f"There is no invoice {reference}.")
    return invoice


def find_staff(email: str) -> int:
    """The id of the support or admin account with this email, for the audit log.

    :raises RefundRefused: no such account, or it is not staff.
    """
    user: User | None = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None or not user.is_staff:
        raise RefundRefused(f"{email} is not a support or admin account.")
    return user.id


def refund_invoice(
    invoice_id: int,
    amount_cents: int | None,
    reason: str,
    actor_id: int | None = None,
    stripe_reason: str | None = None,
) -> CreditNote:
    """Refund ``amount_cents`` (default: all that remains) of a paid invoice; returns the issued
    credit note (committed). The invoice becomes ``refunded`` once all it was paid is refunded.
    ``stripe_reason`` is passed to Stripe (``fraudulent`` for an early fraud warning).

    :raises ChargeDisputed: the payment is under dispute or was charged back (nothing changed).
    :raises RefundRefused: no reason, a non-positive amount, an invoice not paid, more than what
        remains, or Stripe refused the refund (then nothing changed).
    :raises GatewayUnavailable: Stripe did not answer; the credit note stays pending and the
        worker's ``finish_pending_refunds`` (or the next refund of this invoice) finishes it.
    """
    reason = reason.strip()
    if not reason:
        raise RefundRefused("Give the reason for the refund: it is printed on the credit note.")
    finish_pending(invoice_id)
    invoice = _refundable_invoice(invoice_id)
    amount = invoice.refundable_cents if amount_cents is None else amount_cents
    if amount <= 0:
        raise RefundRefused("The amount to refund must be at least one cent.")
    intent_id = _paid_intent(invoice)
    note = _reserve(invoice, amount, reason, actor_id)
    return _ask_stripe(note, intent_id, stripe_reason)


def finish_pending(invoice_id: int | None = None) -> Counter[str]:
    """Finish the credit notes (of ``invoice_id``, or of every invoice) whose refund was asked of
    Stripe more than ``FINISH_AFTER`` ago without an answer being recorded: issued when Stripe has
    the refund, released when it has none. A younger one may still be waiting for Stripe's answer
    in another process, so it is left alone. Returns how many were issued and released.

    :raises GatewayUnavailable: Stripe did not answer; the rest stay pending.
    """
    query = select(CreditNote).where(
        CreditNote.status == CreditNoteStatus.PENDING, CreditNote.created_at <= clock.now() - FINISH_AFTER
    )
    if invoice_id is not None:
        query = query.where(CreditNote.invoice_id == invoice_id)
    counts: Counter[str] = Counter()
    for note in db.session.scalars(query.order_by(CreditNote.id)).all():
        found = gateway.find_refund(_paid_intent(note.invoice), metadata_of(note))
        if found is not None and found.status in ("succeeded", "pending"):
            issue(note, found)
            counts["issued"] += 1
        else:
            _release(note, "Stripe has no refund for this credit note.")
            counts["released"] += 1
    return counts


def _refundable_invoice(invoice_id: int) -> Invoice:
    invoice = db.session.get(Invoice, invoice_id, populate_existing=True)
    if invoice is None:
        raise RefundRefused("There is no such invoice.")
    if invoice.status == InvoiceStatus.REFUNDED:
        raise RefundRefused(f"Invoice {invoice.number} is already refunded in full.")
    if invoice.status != InvoiceStatus.PAID or invoice.amount_paid_cents <= 0:
        raise RefundRefused(
            f"Invoice {invoice.number} is {invoice.status.value}: only paid invoices are refunded."
        )
    if invoice.refund_blocked_by_dispute:
        state = "was charged back (dispute lost)" if invoice.has_lost_dispute else "is under dispute"
        raise ChargeDisputed(
            f"Invoice {invoice.number}'s payment {state}: Stripe refuses refunds of a disputed "
            "charge (charge_disputed). Answer the dispute instead. Nothing was refunded."
        )
    return invoice


def _paid_intent(invoice: Invoice) -> str:
    intent_id = db.session.scalar(
        select(Payment.stripe_payment_intent_id).where(
            Payment.invoice_id == invoice.id,
            Payment.status == PaymentStatus.SUCCEEDED,
            Payment.stripe_payment_intent_id.is_not(None),
        )
    )
    if intent_id is None:
        raise RefundRefused(
            f"Invoice {invoice.number} was not paid by card: there is nothing to refund at Stripe."
        )
    return str(intent_id)


def _reserve(invoice: Invoice, amount: int, reason: str, actor_id: int | None) -> CreditNote:
    """Reserve ``amount`` on the invoice and write the pending credit note, in one commit."""
    reserved = db.session.execute(
        update(Invoice)
        .where(
            Invoice.id == invoice.id,
            Invoice.status == InvoiceStatus.PAID,
            Invoice.amount_refunded_cents + amount <= Invoice.amount_paid_cents,
        )
        .values(amount_refunded_cents=Invoice.amount_refunded_cents + amount)
    )
    if cast(CursorResult[Any], reserved).rowcount != 1:
        db.session.rollback()
        invoice = db.session.get(Invoice, invoice.id, populate_existing=True) or invoice
        remains = format_money(max(invoice.refundable_cents, 0), invoice.currency)
        raise RefundRefused(
            f"Refused: {format_money(amount, invoice.currency)} is more than what remains to refund "
            f"on invoice {invoice.number} ({remains})."
        )
    subtotal, tax = split(invoice, amount)
    note = CreditNote(
        invoice_id=invoice.id,
        user_id=invoice.user_id,
        status=CreditNoteStatus.PENDING,
        currency=invoice.currency,
        subtotal_cents=subtotal,
        tax_cents=tax,
        total_cents=amount,
        reason=reason,
        actor_id=actor_id,
    )
    db.session.add(note)
    db.session.commit()
    return note


def split(invoice: Invoice, amount: int) -> tuple[int, int]:
    """Net and tax of a refund of ``amount`` (gross). The last refund takes exactly what is left of
    each, so the credit notes of a fully refunded invoice add up to it to the cent."""
    credited = db.session.execute(
        select(
            func.coalesce(func.sum(CreditNote.subtotal_cents), 0),
            func.coalesce(func.sum(CreditNote.total_cents), 0),
        ).where(CreditNote.invoice_id == invoice.id, CreditNote.status.in_(COUNTED))
    ).one()
    if credited[1] + amount >= invoice.total_cents:
        subtotal = invoice.subtotal_cents - int(credited[0])
        return subtotal, amount - subtotal
    tax = divide_half_up(amount * invoice.tax_cents, invoice.total_cents) if invoice.total_cents > 0 else 0
    return amount - tax, tax


def metadata_of(note: CreditNote) -> dict[str, str]:
    return {"credit_note_id": str(note.id), "invoice_id": str(note.invoice_id)}


def _ask_stripe(note: CreditNote, intent_id: str, stripe_reason: str | None = None) -> CreditNote:
    try:
        refund = gateway.create_refund(
            intent_id,
            note.total_cents,
            metadata_of(note),
            idempotency_key=idempotency_key("credit-note", note.id),
            reason=stripe_reason,
        )
    except PaymentRejected as exc:
        _release(note, str(exc))
        if exc.code == ChargeDisputed.code:  # a dispute Stripe knows of and we have not heard of yet
            raise ChargeDisputed(f"Stripe refused the refund: the charge is disputed ({exc}).") from exc
        raise RefundRefused(f"Stripe refused the refund: {exc}. Nothing was refunded.") from exc
    if refund.status not in ("succeeded", "pending"):
        _release(note, f"Stripe's refund {refund.id} is {refund.status}.")
        raise RefundRefused(f"Stripe's refund is {refund.status}. Nothing was refunded.")
    return issue(note, refund)


def _settle(note: CreditNote, **values: Any) -> bool:
    """Move a pending credit note on (compare-and-set): False when another process already did."""
    moved = db.session.execute(
        update(CreditNote)
        .where(CreditNote.id == note.id, CreditNote.status == CreditNoteStatus.PENDING)
        .values(**values)
    )
    if cast(CursorResult[Any], moved).rowcount == 1:
        return True
    db.session.rollback()
    db.session.refresh(note)
    return False


def issue(note: CreditNote, refund: gateway.RefundInfo, source: str | None = None) -> CreditNote:
    """Number the credit note and mark the invoice refunded when nothing paid remains (committed).
    The number is taken in the same transaction as the change of status, so none is skipped.
    ``source`` says who refunded when it was not a staff member in the portal (the audit log)."""
    now = clock.now()
    if not _settle(note, status=CreditNoteStatus.ISSUED, issued_at=now, stripe_refund_id=refund.id):
        return note
    note.number = next_number(f"CN-{now.year}-")
    others_pending = exists().where(
        CreditNote.invoice_id == note.invoice_id,
        CreditNote.status == CreditNoteStatus.PENDING,
        CreditNote.id != note.id,
    )
    db.session.execute(
        update(Invoice)
        .where(
            and_(
                Invoice.id == note.invoice_id,
                Invoice.status == InvoiceStatus.PAID,
                Invoice.amount_refunded_cents >= Invoice.amount_paid_cents,
                ~others_pending,
            )
        )
        .values(status=InvoiceStatus.REFUNDED)
    )
    invoice = note.invoice
    audit.record(
        "invoice.refunded",
        note.user_id,
        note,
        actor_id=note.actor_id,
        invoice=invoice.number,
        credit_note=note.number,
        amount_cents=note.total_cents,
        stripe_refund=refund.id,
        reason=note.reason,
        source=source,
    )
    notices.refund_issued(note)
    if source is not None:
        notices.outside_refund_recorded(note)  # staff did not make it in the portal: tell them
    db.session.commit()
    db.session.refresh(invoice)
    return note


def _release(note: CreditNote, why: str) -> None:
    """Stripe did not refund: give the reserved amount back to the invoice (committed)."""
    if not _settle(note, status=CreditNoteStatus.FAILED, failure_message=why[:500]):
        return
    db.session.execute(
        update(Invoice)
        .where(Invoice.id == note.invoice_id)
        .values(amount_refunded_cents=Invoice.amount_refunded_cents - note.total_cents)
    )
    audit.record("invoice.refund_failed", note.user_id, note, actor_id=note.actor_id, reason=why[:200])
    db.session.commit()
    log.warning("refund for credit note %s not made: %s", note.id, why)


def credit_notes_of(invoice_id: int) -> list[CreditNote]:
    """The issued credit notes of an invoice, oldest first, with those reversed since (a document
    once issued stays in the books)."""
    shown = (CreditNoteStatus.ISSUED, CreditNoteStatus.REVERSED)
    query = (
        select(CreditNote)
        .where(CreditNote.invoice_id == invoice_id, CreditNote.status.in_(shown))
        .order_by(CreditNote.id)
    )
    return list(db.session.scalars(query))
