"""Invoices: build them from lines, apply tax, finalize with a gapless yearly number.

A finalized invoice is immutable: its totals, lines and the billing details copied onto it never
change again; only its payment state moves (open -> paid, void or uncollectible).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError

from dicomportal import clock
from dicomportal.billing.proration import totals
from dicomportal.billing.tax import tax_for
from dicomportal.extensions import db
from dicomportal.models import (
    BillingProfile,
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceNumberSeries,
    InvoiceStatus,
    LineKind,
    Subscription,
    User,
)


@dataclass(frozen=True)
class LineSpec:
    kind: LineKind
    description: str
    amount_cents: int
    quantity: int = 1
    price_id: int | None = None
    period_start: datetime | None = None
    period_end: datetime | None = None


def create_invoice(
    user: User,
    lines: list[LineSpec],
    reason: BillingReason,
    subscription: Subscription | None = None,
    period: tuple[datetime, datetime] | None = None,
) -> Invoice:
    """A draft invoice with ``lines`` (added to the session; written by :func:`finalize`'s flush)."""
    invoice = Invoice(
        user=user,
        subscription=subscription,
        status=InvoiceStatus.DRAFT,
        billing_reason=reason,
        currency="USD",
        period_start=period[0] if period else None,
        period_end=period[1] if period else None,
    )
    for spec in lines:
        invoice.lines.append(
            InvoiceLine(
                kind=spec.kind,
                description=spec.description,
                quantity=spec.quantity,
                unit_amount_cents=spec.amount_cents // max(spec.quantity, 1),
                amount_cents=spec.amount_cents,
                price_id=spec.price_id,
                period_start=spec.period_start,
                period_end=spec.period_end,
            )
        )
    db.session.add(invoice)
    return invoice


def finalize(invoice: Invoice, config: dict[str, Any]) -> Invoice:
    """Compute totals and tax, copy the billing details, and give the invoice its number.

    Runs inside the caller's transaction: the number is taken under the series row's lock and is
    released only by that transaction's commit, so numbers are unique and none is skipped.
    """
    if invoice.status != InvoiceStatus.DRAFT:
        raise ValueError(f"invoice {invoice.id} is already finalized")
    with db.session.no_autoflush:  # one INSERT of the finished invoice, not an INSERT then an UPDATE
        _compute_and_number(invoice, config)
    db.session.flush()
    return invoice


def _compute_and_number(invoice: Invoice, config: dict[str, Any]) -> None:
    user = invoice.user
    profile = user.billing_profile
    tax = tax_for(profile, config)
    figures = totals([line.amount_cents for line in invoice.lines], tax.rate_bp)
    invoice.subtotal_cents = figures.subtotal_cents
    invoice.tax_rate_bp = tax.rate_bp
    invoice.tax_note = tax.note
    invoice.tax_cents = figures.tax_cents
    invoice.total_cents = figures.total_cents
    _snapshot_billing_details(invoice, user, profile)
    now = clock.now()
    invoice.number = next_invoice_number(now)
    invoice.finalized_at = now
    invoice.status = InvoiceStatus.OPEN
    if invoice.total_cents <= 0:
        mark_paid(invoice, 0)


def _snapshot_billing_details(invoice: Invoice, user: User, profile: BillingProfile | None) -> None:
    invoice.billing_email = user.email
    invoice.billing_name = profile.name if profile else user.name
    if profile is None:
        return
    invoice.billing_company = profile.company
    parts = [profile.address_line1, profile.address_line2, profile.city, profile.state, profile.postal_code]
    invoice.billing_address = "\n".join(p for p in parts if p)
    invoice.billing_country = profile.country
    invoice.billing_tax_id = profile.tax_id


def next_invoice_number(now: datetime) -> str:
    """Take the next number of this year's series, e.g. ``DP-2026-000042``."""
    return next_number(f"DP-{now.year}-")


def next_number(prefix: str) -> str:
    """Take the next number of the series ``prefix`` (invoices ``DP-2026-``, credit notes
    ``CN-2026-``) under the series row's lock: unique and gapless once the caller commits."""
    taken = db.session.scalar(
        update(InvoiceNumberSeries)
        .where(InvoiceNumberSeries.prefix == prefix)
        .values(next_number=InvoiceNumberSeries.next_number + 1)
        .returning(InvoiceNumberSeries.next_number - 1)
    )
    if taken is None:
        taken = _start_series(prefix)
    return f"{prefix}{taken:06d}"


def _start_series(prefix: str) -> int:
    """First number of a new year; if another transaction started the series first, take the next."""
    try:
        with db.session.begin_nested():
            db.session.execute(insert(InvoiceNumberSeries).values(prefix=prefix, next_number=2))
        return 1
    except IntegrityError:
        number = db.session.scalar(
            update(InvoiceNumberSeries)
            .where(InvoiceNumberSeries.prefix == prefix)
            .values(next_number=InvoiceNumberSeries.next_number + 1)
            .returning(InvoiceNumberSeries.next_number - 1)
        )
        assert number is not None
        return int(number)


def mark_paid(invoice: Invoice, amount_cents: int) -> None:
    invoice.amount_paid_cents += amount_cents
    invoice.status = InvoiceStatus.PAID
    invoice.paid_at = clock.now()
    invoice.next_attempt_at = None


def void(invoice: Invoice) -> None:
    """Cancel an unpaid invoice; it keeps its number (numbers are never reused or skipped)."""
    invoice.status = InvoiceStatus.VOID
    invoice.voided_at = clock.now()
    invoice.next_attempt_at = None


_NEWEST_FIRST = (
    select(Invoice)
    .where(Invoice.user_id == bindparam("user_id"), Invoice.status != InvoiceStatus.DRAFT)
    .order_by(Invoice.finalized_at.desc(), Invoice.id.desc())
    .limit(bindparam("limit", type_=Integer))
)


def invoices_for(user_id: int, limit: int = 50) -> list[Invoice]:
    """A customer's finalized invoices, newest first (read through the customer's index)."""
    return list(db.session.scalars(_NEWEST_FIRST, {"user_id": user_id, "limit": limit}))
