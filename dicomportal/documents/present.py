"""What the templates print, formatted once in Python with Babel: money, dates, rates, countries.

Templates receive a :class:`DocumentView` of ready strings, so they hold no formatting logic and
any Jinja environment (the app's or a bare one) renders them the same way.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from babel import Locale
from babel.dates import format_date, format_interval
from babel.numbers import format_currency, format_decimal, format_percent, get_currency_precision

from dicomportal.documents.model import (
    Document,
    Line,
    LineKind,
    PaymentMethod,
    PaymentStatus,
    Period,
    TaxCategory,
    TaxLine,
)

LINE_KIND_LABELS = {
    LineKind.PLAN: "Subscription",
    LineKind.PRORATION: "Plan change",
    LineKind.ADDON: "Add-on",
    LineKind.OVERAGE: "Usage",
    LineKind.CREDIT: "Credit",
}
CARD_BRANDS = {
    "amex": "American Express",
    "diners": "Diners Club",
    "discover": "Discover",
    "jcb": "JCB",
    "mastercard": "Mastercard",
    "unionpay": "UnionPay",
    "visa": "Visa",
}
STATUS_LABELS = {
    PaymentStatus.OPEN: "Due",
    PaymentStatus.PAID: "Paid",
    PaymentStatus.PARTIALLY_REFUNDED: "Partially refunded",
    PaymentStatus.REFUNDED: "Refunded",
    PaymentStatus.VOID: "Void",
    PaymentStatus.DISPUTED: "Disputed",
    PaymentStatus.CHARGED_BACK: "Charged back",
}


@dataclass(frozen=True)
class LineView:
    description: str
    detail: str  # kind and period: "Subscription · Mar 1 - 31, 2026"
    quantity: str
    unit_price: str
    vat_rate: str
    amount: str
    is_credit: bool


@dataclass(frozen=True)
class TaxView:
    label: str  # "VAT 19%", "Reverse charge 0%"
    taxable: str
    tax: str


@dataclass(frozen=True)
class DocumentView:
    title: str
    number: str
    issue_date: str
    service_period: str | None
    due_date: str | None
    paid_date: str | None
    paid_date_label: str
    status: str
    status_key: str
    payment: str | None
    seller_country: str
    buyer_country: str
    logo_src: str | None
    lines: tuple[LineView, ...]
    taxes: tuple[TaxView, ...]
    subtotal: str
    tax_total: str
    total: str
    total_label: str
    amount_paid: str | None
    amount_due: str | None
    mentions: tuple[str, ...]  # legal text: reverse charge, VAT exemption reasons
    credited_invoice: str | None  # "DP-2026-000042 of Mar 1, 2026"
    credited_invoice_date: str | None


def present(doc: Document) -> DocumentView:
    """The printed strings of ``doc`` in its locale."""
    fmt = _Formatter(doc.locale, doc.currency)
    return DocumentView(
        title="Credit note" if doc.is_credit_note else "Invoice",
        number=doc.number,
        issue_date=fmt.date(doc.issue_date),
        service_period=fmt.period(doc.service_period),
        due_date=fmt.date(doc.due_date) if doc.due_date and not doc.is_credit_note else None,
        paid_date=fmt.date(doc.paid_date) if doc.paid_date else None,
        paid_date_label="Refund date" if doc.is_credit_note else "Paid on",
        status=_status_label(doc),
        status_key=doc.status.value,
        payment=_payment_sentence(doc, fmt),
        seller_country=fmt.country(doc.seller.country),
        buyer_country=fmt.country(doc.buyer.country),
        logo_src=_data_uri(doc),
        lines=tuple(_line_view(line, fmt) for line in doc.lines),
        taxes=tuple(_tax_view(tax, fmt) for tax in doc.tax_lines),
        subtotal=fmt.money(doc.subtotal_cents),
        tax_total=fmt.money(doc.tax_cents),
        total=fmt.money(doc.total_cents),
        total_label="Total credited" if doc.is_credit_note else "Total",
        amount_paid=_amount_paid(doc, fmt),
        amount_due=None if doc.is_credit_note else fmt.money(doc.amount_due_cents),
        mentions=tuple(dict.fromkeys(t.exemption_reason for t in doc.tax_lines if t.exemption_reason)),
        credited_invoice=_credited_invoice(doc, fmt),
        credited_invoice_date=fmt.date(doc.credited_invoice_date) or None,
    )


class _Formatter:
    def __init__(self, locale: str, currency: str) -> None:
        self.locale = Locale.parse(locale)
        self.currency = currency
        self.digits = get_currency_precision(currency)

    def money(self, minor_units: int) -> str:
        amount = Decimal(minor_units).scaleb(-self.digits)
        return str(format_currency(amount, self.currency, locale=self.locale))

    def date(self, value: date | None) -> str:
        return str(format_date(value, format="medium", locale=self.locale)) if value else ""

    def period(self, period: Period | None) -> str | None:
        if period is None:
            return None
        if period.start == period.end:
            return self.date(period.start)
        return str(format_interval(period.start, period.end, skeleton="yMMMd", locale=self.locale))

    def rate(self, rate_bp: int) -> str:
        return str(format_percent(Decimal(rate_bp).scaleb(-4), format="#,##0.##%", locale=self.locale))

    def quantity(self, quantity: int) -> str:
        return str(format_decimal(quantity, locale=self.locale))

    def country(self, code: str) -> str:
        return str(self.locale.territories.get(code.upper(), code.upper()))


def _line_view(line: Line, fmt: _Formatter) -> LineView:
    detail = LINE_KIND_LABELS[line.kind]
    if line.period:
        detail = f"{detail} · {fmt.period(line.period)}"
    return LineView(
        description=line.description,
        detail=detail,
        quantity=fmt.quantity(line.quantity),
        unit_price=fmt.money(line.unit_price_cents),
        vat_rate=fmt.rate(line.tax_rate_bp) if line.tax_category is TaxCategory.STANDARD else "0%",
        amount=fmt.money(line.amount_cents),
        is_credit=line.amount_cents < 0,
    )


TAX_LABELS = {
    TaxCategory.ZERO_RATED: "VAT zero-rated",
    TaxCategory.REVERSE_CHARGE: "Reverse charge",
    TaxCategory.OUTSIDE_SCOPE: "Not subject to EU VAT",
}


def _tax_view(tax: TaxLine, fmt: _Formatter) -> TaxView:
    label = TAX_LABELS.get(tax.category, "VAT")
    return TaxView(f"{label} {fmt.rate(tax.rate_bp)}", fmt.money(tax.taxable_cents), fmt.money(tax.tax_cents))


def card(method: PaymentMethod) -> str:
    """``Visa •••• 4242``."""
    return f"{CARD_BRANDS.get(method.brand.lower(), method.brand.title())} •••• {method.last4}"


def _status_label(doc: Document) -> str:
    if doc.is_credit_note:
        return "Refunded" if doc.status is PaymentStatus.REFUNDED else "Credit issued"
    return STATUS_LABELS[doc.status]


def _payment_sentence(doc: Document, fmt: _Formatter) -> str | None:
    method = (
        f" {'to' if doc.is_credit_note else 'with'} {card(doc.payment_method)}" if doc.payment_method else ""
    )
    when = f" on {fmt.date(doc.paid_date)}" if doc.paid_date else ""
    if doc.is_credit_note:
        if doc.status is PaymentStatus.REFUNDED:
            return f"Refunded{when}{method}."
        return "Credited to your account."
    if doc.status is PaymentStatus.OPEN:
        due = f" by {fmt.date(doc.due_date)}" if doc.due_date else ""
        card_note = f" It will be charged to {card(doc.payment_method)}." if doc.payment_method else ""
        return f"Payment due{due}.{card_note}"
    if doc.status is PaymentStatus.VOID:
        return "This invoice was voided: nothing is due."
    see = "see the credit notes that reference this invoice."
    refunded = {
        PaymentStatus.PARTIALLY_REFUNDED: f" Partly refunded: {see}",
        PaymentStatus.REFUNDED: f" Refunded in full: {see}",
        PaymentStatus.DISPUTED: " Your bank has disputed this payment: contact support with questions.",
        PaymentStatus.CHARGED_BACK: " Your bank took this payment back after a dispute: contact support.",
    }.get(doc.status, "")
    return f"Paid{when}{method}.{refunded}"


def _amount_paid(doc: Document, fmt: _Formatter) -> str | None:
    if doc.is_credit_note or doc.status in (PaymentStatus.OPEN, PaymentStatus.VOID):
        return None
    return fmt.money(doc.total_cents)


def _credited_invoice(doc: Document, fmt: _Formatter) -> str | None:
    if not doc.credited_invoice_number:
        return None
    dated = f" of {fmt.date(doc.credited_invoice_date)}" if doc.credited_invoice_date else ""
    return f"{doc.credited_invoice_number}{dated}"


def _data_uri(doc: Document) -> str | None:
    logo = doc.seller.logo
    if logo is None:
        return None
    return f"data:{logo.media_type};base64,{base64.b64encode(logo.data).decode('ascii')}"
