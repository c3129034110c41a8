"""Our records as printed: an :class:`Invoice` or :class:`CreditNote` row -> a :class:`Document`.

Everything printed comes from the row and what was copied onto it at finalization (the buyer's
billing details, the tax rate and mention that billing decided), never from the customer's
current profile, so a document printed today and in five years is the same. The seller is the one
configured (SELLER_*). The VAT category code is how EN 16931 names billing's decision: reverse
charge when billing wrote the mention, standard when a rate applies, outside the scope for a
customer outside the EU of an EU seller, zero-rated otherwise.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from sqlalchemy import select
from stdnum.eu import vat

from dicomportal.documents.model import (
    Buyer,
    Document,
    DocumentKind,
    Line,
    LineKind,
    PaymentMethod,
    PaymentStatus,
    Period,
    Seller,
    TaxCategory,
    TaxLine,
)
from dicomportal.documents.render import default_logo
from dicomportal.extensions import db
from dicomportal.models import CreditNote, Invoice, InvoiceStatus, Payment
from dicomportal.models import PaymentMethod as CardRow
from dicomportal.models import PaymentStatus as PaymentRowStatus

# The member states (python-stdnum's list), for the VAT category only: billing/tax.py decides rates.
EU = frozenset(code.upper() for code in vat.MEMBER_STATES) - {"XI"}


def seller(config: Mapping[str, Any]) -> Seller:
    """The seller printed on every document, from the SELLER_* settings."""
    address = [part.strip() for part in re.split(r"\n|,\s*(?=\S)", str(config.get("SELLER_ADDRESS", "")))]
    return Seller(
        name=str(config.get("SELLER_NAME") or "DICOM Portal"),
        address_lines=tuple(part for part in address if part),
        country=str(config.get("SELLER_COUNTRY") or "US").upper(),
        vat_number=config.get("SELLER_VAT_NUMBER") or None,
        logo=default_logo(),
        email=config.get("SUPPORT_EMAIL") or None,
    )


def buyer(invoice: Invoice, seller_country: str) -> Buyer:
    """The buyer as copied onto the invoice when it was finalized."""
    return Buyer(
        name=invoice.billing_name or invoice.billing_email or "Customer",
        address_lines=tuple(line for line in (invoice.billing_address or "").splitlines() if line.strip()),
        country=(invoice.billing_country or seller_country).upper(),
        company=invoice.billing_company,
        tax_id=invoice.billing_tax_id,
        email=invoice.billing_email,
    )


def category(invoice: Invoice, seller_country: str, buyer_country: str) -> TaxCategory:
    """The EN 16931 VAT category of billing's tax decision for ``invoice``."""
    if invoice.tax_note:
        return TaxCategory.REVERSE_CHARGE
    if invoice.tax_rate_bp > 0:
        return TaxCategory.STANDARD
    if seller_country in EU and buyer_country not in EU:
        return TaxCategory.OUTSIDE_SCOPE
    return TaxCategory.ZERO_RATED


def _tax_line(cat: TaxCategory, rate_bp: int, taxable: int, tax: int) -> TaxLine:
    if cat is TaxCategory.STANDARD:
        return TaxLine.standard(rate_bp, taxable, tax)
    if cat is TaxCategory.REVERSE_CHARGE:
        return TaxLine.reverse_charge(taxable)
    if cat is TaxCategory.OUTSIDE_SCOPE:
        return TaxLine.outside_scope(taxable)
    return TaxLine(TaxCategory.ZERO_RATED, 0, taxable, 0)


def printed_status(invoice: Invoice) -> PaymentStatus:
    """The payment status an invoice prints (and the key its stored PDF is kept under)."""
    if invoice.is_disputed:
        return PaymentStatus.DISPUTED
    if invoice.has_lost_dispute:
        return PaymentStatus.CHARGED_BACK
    if invoice.status == InvoiceStatus.REFUNDED:
        return PaymentStatus.REFUNDED
    if invoice.status == InvoiceStatus.PAID:
        return PaymentStatus.PARTIALLY_REFUNDED if invoice.amount_refunded_cents else PaymentStatus.PAID
    if invoice.status == InvoiceStatus.VOID:
        return PaymentStatus.VOID
    return PaymentStatus.OPEN


def _period(start: Any, end: Any) -> Period | None:
    return Period.from_datetimes(start, end) if start is not None and end is not None else None


def invoice_document(invoice: Invoice, config: Mapping[str, Any]) -> Document:
    """The printed invoice (it must be finalized)."""
    if invoice.number is None or invoice.finalized_at is None:
        raise ValueError(f"invoice {invoice.id} is not finalized")
    sold_by = seller(config)
    bought_by = buyer(invoice, sold_by.country)
    cat = category(invoice, sold_by.country, bought_by.country)
    rate = invoice.tax_rate_bp if cat is TaxCategory.STANDARD else 0
    lines = tuple(_line(row, cat, rate) for row in invoice.lines)
    status = printed_status(invoice)
    return Document(
        kind=DocumentKind.INVOICE,
        number=invoice.number,
        issue_date=invoice.finalized_at.date(),
        currency=invoice.currency,
        seller=sold_by,
        buyer=bought_by,
        lines=lines,
        tax_lines=(_tax_line(cat, rate, invoice.subtotal_cents, invoice.tax_cents),),
        subtotal_cents=invoice.subtotal_cents,
        tax_cents=invoice.tax_cents,
        total_cents=invoice.total_cents,
        status=status,
        service_period=_period(invoice.period_start, invoice.period_end),
        due_date=invoice.finalized_at.date(),
        paid_date=invoice.paid_at.date() if invoice.paid_at and status is not PaymentStatus.OPEN else None,
        payment_method=card_of(invoice),
    )


def _line(row: Any, cat: TaxCategory, rate: int) -> Line:
    quantity = (
        row.quantity if row.quantity > 0 and row.quantity * row.unit_amount_cents == row.amount_cents else 1
    )
    return Line(
        description=row.description,
        kind=LineKind(row.kind.value),
        quantity=quantity,
        unit_price_cents=row.amount_cents // quantity,
        amount_cents=row.amount_cents,
        tax_category=cat,
        tax_rate_bp=rate,
        period=_period(row.period_start, row.period_end),
    )


def card_of(invoice: Invoice) -> PaymentMethod | None:
    """The card that paid the invoice (or, while it is open, the one it will be charged to)."""
    paid_with = db.session.scalar(
        select(Payment.stripe_payment_method_id)
        .where(Payment.invoice_id == invoice.id, Payment.status == PaymentRowStatus.SUCCEEDED)
        .limit(1)
    )
    query = select(CardRow).where(CardRow.user_id == invoice.user_id)
    if paid_with:
        query = query.where(CardRow.stripe_payment_method_id == paid_with)
    elif invoice.status == InvoiceStatus.OPEN:
        query = query.where(CardRow.is_default.is_(True), CardRow.detached_at.is_(None))
    else:
        return None
    card = db.session.scalars(query.limit(1)).first()
    return PaymentMethod(card.brand, card.last4) if card else None


def credit_note_document(note: CreditNote, config: Mapping[str, Any]) -> Document:
    """The printed credit note of an issued refund, referencing the invoice it credits."""
    invoice = note.invoice
    if (
        note.number is None
        or note.issued_at is None
        or invoice.number is None
        or invoice.finalized_at is None
    ):
        raise ValueError(f"credit note {note.id} is not issued")
    sold_by = seller(config)
    bought_by = buyer(invoice, sold_by.country)
    cat = category(invoice, sold_by.country, bought_by.country)
    rate = invoice.tax_rate_bp if cat is TaxCategory.STANDARD else 0
    line = Line(
        description=f"Refund of invoice {invoice.number}",
        kind=LineKind.CREDIT,
        quantity=1,
        unit_price_cents=note.subtotal_cents,
        amount_cents=note.subtotal_cents,
        tax_category=cat,
        tax_rate_bp=rate,
        period=_period(invoice.period_start, invoice.period_end),
    )
    return Document(
        kind=DocumentKind.CREDIT_NOTE,
        number=note.number,
        issue_date=note.issued_at.date(),
        currency=note.currency,
        seller=sold_by,
        buyer=bought_by,
        lines=(line,),
        tax_lines=(_tax_line(cat, rate, note.subtotal_cents, note.tax_cents),),
        subtotal_cents=note.subtotal_cents,
        tax_cents=note.tax_cents,
        total_cents=note.total_cents,
        status=PaymentStatus.REFUNDED,
        paid_date=note.issued_at.date(),
        payment_method=card_of(invoice),
        credited_invoice_number=invoice.number,
        credited_invoice_date=invoice.finalized_at.date(),
        reason=note.reason,
    )
