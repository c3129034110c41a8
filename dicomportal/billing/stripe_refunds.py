"""Refunds as Stripe has them: refunds made outside the portal, and refunds that failed.

Stripe is the truth about money moved; our credit notes are the truth about documents. This module
brings the second in step with the first, from two directions that share one code path:
``charge.refunded`` / ``refund.*`` webhooks (events are hints: the refunds are re-read from
Stripe) and the daily reconciliation (``billing/reconcile.py``).

- A **refund made in the Stripe Dashboard** (no metadata of ours, no credit note with its id) is
  booked like a portal refund: its amount is reserved on the invoice, a credit note is numbered in
  the same ``CN-`` series (same PDF), the customer gets the same email, the audit log says it was
  done by "Stripe (outside the portal)" and staff are told. It is booked once: the credit note is
  unique on the Stripe refund id and written in the transaction that reserves its amount (the
  invoice row locked), so a replayed or concurrent delivery either finds it or loses on that key,
  its reservation rolled back with it. Only ``succeeded`` refunds are
  booked (a ``pending`` one is booked when its ``refund.updated`` says it went through).
- A **refund that failed** after its credit note was issued (Stripe refunds can fail days later,
  e.g. the card was closed) means the money stayed with us.

Why a failed refund reverses its credit note rather than editing or deleting it: once issued, a
credit note is an accounting document. It keeps its number (the series stays gapless), its
amounts, its date and its stored PDF, and the customer may already hold it; an accountant must
still find it. What happened later is a second, dated event: the note is marked ``reversed`` with
``reversed_at``, Stripe's reason, and a reversal number of its own, in a gapless yearly series
(``CNR-2026-000001``), so the reversing entry is posted in the period the refund failed, not back
in the period the credit note was issued. The invoice's refunded amount goes down by the note's
amount (a fully refunded invoice is ``paid`` again): that amount is owed to the customer again and
staff are emailed to return it another way or to refund anew. No debit-note PDF is printed for the
reversal: the audit log and the staff email carry it, and the invoice's own PDF prints the refunded
amount that remains.
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, case, select, update
from sqlalchemy.exc import IntegrityError

from dicomportal import clock
from dicomportal.billing import audit, gateway, notices, refunds
from dicomportal.billing.invoicing import next_number
from dicomportal.billing.money import format_money
from dicomportal.extensions import db
from dicomportal.models import CreditNote, CreditNoteStatus, Invoice, InvoiceStatus, Payment, PaymentStatus

log = logging.getLogger(__name__)

OUTSIDE = "Stripe (outside the portal)"
FAILED = ("failed", "canceled")

REASONS = {
    "requested_by_customer": "requested by the customer",
    "duplicate": "duplicate payment",
    "fraud": "fraudulent payment",
}


@dataclass(frozen=True)
class RefundGap:
    """A refund at Stripe that our credit notes do not reflect (yet)."""

    kind: str  # "missing_credit_note" or "refund_failed"
    invoice_id: int
    refund: gateway.RefundInfo
    note_id: int | None = None

    def describe(self, invoice: Invoice) -> str:
        """One line for the reconciliation report, naming the invoice and the amounts."""
        amount = format_money(self.refund.amount, invoice.currency)
        if self.kind == "missing_credit_note":
            return (
                f"{invoice.number}: refund {self.refund.id} of {amount} at Stripe has no credit note "
                f"(refunded in our books: {format_money(invoice.amount_refunded_cents, invoice.currency)})"
            )
        note = db.session.get(CreditNote, self.note_id) if self.note_id else None
        return (
            f"{invoice.number}: credit note {note.number if note else '?'} of {amount} is issued, "
            f"but Stripe's refund {self.refund.id} is {self.refund.status}"
        )


def invoice_paid_by(intent_id: str) -> int | None:
    """The invoice a succeeded payment of ours with this PaymentIntent paid, or None."""
    invoice_id: int | None = db.session.scalar(
        select(Payment.invoice_id).where(
            Payment.stripe_payment_intent_id == intent_id, Payment.status == PaymentStatus.SUCCEEDED
        )
    )
    return invoice_id


def gaps(invoice_id: int, at_stripe: list[gateway.RefundInfo]) -> list[RefundGap]:
    """Stripe's refunds of this invoice that our credit notes miss or still count as refunded.

    A refund carrying one of our credit notes' ids in its metadata is ours even before we stored
    its id (the pending refund ``refunds.finish_pending`` finishes): it is never booked twice.
    """
    notes = list(db.session.scalars(select(CreditNote).where(CreditNote.invoice_id == invoice_id)))
    by_refund = {note.stripe_refund_id: note for note in notes if note.stripe_refund_id}
    ours = {str(note.id) for note in notes}
    found: list[RefundGap] = []
    for refund in at_stripe:
        note = by_refund.get(refund.id)
        if note is not None:
            if note.status == CreditNoteStatus.ISSUED and refund.status in FAILED:
                found.append(RefundGap("refund_failed", invoice_id, refund, note.id))
        elif refund.metadata.get("credit_note_id") in ours:
            continue  # our own refund, still pending here: finish_pending settles it
        elif refund.status == "succeeded":
            found.append(RefundGap("missing_credit_note", invoice_id, refund))
    return found


def settle(gap: RefundGap) -> str:
    """Book one gap (committed): ``booked``, ``reversed``, ``already_done`` or ``unbooked``."""
    if gap.kind == "missing_credit_note":
        note = book_outside_refund(gap.invoice_id, gap.refund)
        return "unbooked" if note is None else "booked"
    return "reversed" if reverse(gap.note_id or 0, gap.refund) else "already_done"


def sync_intent(intent_id: str) -> Counter[str]:
    """Re-read a PaymentIntent's refunds from Stripe and book what our credit notes miss (the
    webhooks' path). A PaymentIntent that paid none of our invoices is ignored."""
    invoice_id = invoice_paid_by(intent_id)
    db.session.rollback()  # no transaction held while Stripe answers
    if invoice_id is None:
        return Counter(not_ours=1)
    counts: Counter[str] = Counter()
    for gap in gaps(invoice_id, gateway.list_refunds(intent_id)):
        counts[settle(gap)] += 1
    return counts


def _reason(refund: gateway.RefundInfo) -> str:
    why = REASONS.get(refund.reason or "", refund.reason)
    return f"Refund made in Stripe (outside the portal){f': {why}' if why else ''}"


def book_outside_refund(invoice_id: int, refund: gateway.RefundInfo) -> CreditNote | None:
    """Issue the credit note of a refund made at Stripe, exactly once (committed). Returns the
    note (the one already booked on a replay), or None when the invoice cannot take the amount
    (Stripe refunded more than our books say was paid): the reconciliation reports that one."""
    existing = _by_refund(refund.id)
    if existing is not None:
        return existing
    invoice = db.session.get_one(Invoice, invoice_id, populate_existing=True)
    if not _reserve(invoice, refund.amount):  # the invoice row stays locked until the commit
        db.session.rollback()
        booked = _by_refund(refund.id)  # a concurrent delivery booked it (and took what was left)
        if booked is None:
            log.error(
                "refund %s of %s at Stripe exceeds what invoice %s has left",
                refund.id,
                refund.amount,
                invoice_id,
            )
        return booked
    subtotal, tax = refunds.split(invoice, refund.amount)  # under the lock, as portal refunds
    note = CreditNote(
        invoice_id=invoice.id,
        user_id=invoice.user_id,
        status=CreditNoteStatus.PENDING,
        currency=invoice.currency,
        subtotal_cents=subtotal,
        tax_cents=tax,
        total_cents=refund.amount,
        reason=_reason(refund),
        stripe_refund_id=refund.id,
    )
    db.session.add(note)
    try:
        db.session.flush()  # unique on the Stripe refund id: a replay that got this far loses here
    except IntegrityError:
        db.session.rollback()  # and gives its reservation back
        return _by_refund(refund.id)
    db.session.refresh(invoice)
    return refunds.issue(note, refund, source=OUTSIDE)


def _by_refund(refund_id: str) -> CreditNote | None:
    note: CreditNote | None = db.session.scalar(
        select(CreditNote).where(CreditNote.stripe_refund_id == refund_id)
    )
    return note


def _reserve(invoice: Invoice, amount: int) -> bool:
    reserved = db.session.execute(
        update(Invoice)
        .where(
            Invoice.id == invoice.id,
            Invoice.status == InvoiceStatus.PAID,
            Invoice.amount_refunded_cents + amount <= Invoice.amount_paid_cents,
        )
        .values(amount_refunded_cents=Invoice.amount_refunded_cents + amount)
    )
    return cast(CursorResult[Any], reserved).rowcount == 1


def reverse(note_id: int, refund: gateway.RefundInfo) -> bool:
    """Stripe's refund of an issued credit note failed: mark the note reversed (numbered, dated),
    count its amount as not refunded on the invoice again, audit and tell staff (committed).
    False when it was reversed already (a replay)."""
    now = clock.now()
    why = refund.failure_reason or refund.status
    moved = db.session.execute(
        update(CreditNote)
        .where(CreditNote.id == note_id, CreditNote.status == CreditNoteStatus.ISSUED)
        .values(
            status=CreditNoteStatus.REVERSED,
            reversed_at=now,
            reversal_number=next_number(f"CNR-{now.year}-"),
            failure_message=f"Stripe's refund {refund.id} is {refund.status}: {why}"[:500],
        )
    )
    if cast(CursorResult[Any], moved).rowcount != 1:
        db.session.rollback()  # gives the reversal number back too: the series stays gapless
        return False
    note = db.session.get_one(CreditNote, note_id, populate_existing=True)
    db.session.execute(
        update(Invoice)
        .where(Invoice.id == note.invoice_id)
        .values(
            amount_refunded_cents=Invoice.amount_refunded_cents - note.total_cents,
            status=case((Invoice.status == InvoiceStatus.REFUNDED, InvoiceStatus.PAID), else_=Invoice.status),
        )
    )
    db.session.refresh(note.invoice)
    audit.record(
        "invoice.refund_reversed",
        note.user_id,
        note,
        invoice=note.invoice.number,
        credit_note=note.number,
        reversal=note.reversal_number,
        amount_cents=note.total_cents,
        stripe_refund=refund.id,
        failure_reason=refund.failure_reason,
        source="Stripe",
    )
    notices.refund_failed(note, refund.failure_reason)
    db.session.commit()
    log.warning("refund %s of credit note %s failed at Stripe (%s): reversed", refund.id, note.number, why)
    return True
