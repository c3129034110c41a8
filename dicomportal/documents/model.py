"""A finalized invoice or credit note exactly as it is printed: plain frozen values, no database.

The billing domain decides every amount (lines, tax, totals); these classes only carry what it
decided and refuse a document whose figures do not add up, so a PDF can never show a total that
is not the sum of its lines and taxes. Money is integer minor units (cents) in ``currency``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

REVERSE_CHARGE_MENTION = (
    "Reverse charge: VAT to be accounted for by the recipient (Art. 196 Council Directive 2006/112/EC)"
)
OUTSIDE_SCOPE_MENTION = (
    "Not subject to VAT in the EU: place of supply outside the EU (Art. 44 and 58 Council Directive "
    "2006/112/EC)"
)


class InvalidDocument(ValueError):
    """The document's figures or references are inconsistent; it must not be printed."""


class DocumentKind(enum.StrEnum):
    INVOICE = "invoice"
    CREDIT_NOTE = "credit_note"


class LineKind(enum.StrEnum):
    PLAN = "plan"
    PRORATION = "proration"
    ADDON = "addon"
    OVERAGE = "overage"
    CREDIT = "credit"


class TaxCategory(enum.StrEnum):
    """VAT category codes of EN 16931 (UNTDID 5305) that a subscription business meets."""

    STANDARD = "S"  # taxed at the rate of the customer's (or the seller's) country
    ZERO_RATED = "Z"  # taxable, at a 0% rate set by law
    REVERSE_CHARGE = "AE"  # EU B2B across a border: the buyer accounts for the VAT
    OUTSIDE_SCOPE = "O"  # place of supply outside the EU (e.g. a US customer): no EU VAT at all

    @property
    def needs_reason(self) -> bool:
        """EN 16931 requires an exemption reason in the VAT breakdown of these categories."""
        return self in (TaxCategory.REVERSE_CHARGE, TaxCategory.OUTSIDE_SCOPE)

    @property
    def exemption_code(self) -> str | None:
        """The VATEX code (CEF list) matching the category, for the Factur-X XML."""
        return {"AE": "VATEX-EU-AE", "O": "VATEX-EU-O"}.get(self.value)


class PaymentStatus(enum.StrEnum):
    OPEN = "open"  # due, not paid yet
    PAID = "paid"
    PARTIALLY_REFUNDED = "partially_refunded"
    REFUNDED = "refunded"  # invoice refunded in full; on a credit note: the money went back
    VOID = "void"
    DISPUTED = "disputed"  # paid, and the customer's bank disputes the payment (not decided yet)
    CHARGED_BACK = "charged_back"  # paid, then taken back by the bank after a lost dispute


@dataclass(frozen=True)
class Logo:
    """An image embedded in the document (no URL: nothing is fetched while rendering)."""

    data: bytes
    media_type: str  # "image/svg+xml" or "image/png"

    def __post_init__(self) -> None:
        if self.media_type not in ("image/svg+xml", "image/png", "image/jpeg"):
            raise InvalidDocument(f"unsupported logo type {self.media_type!r}")


@dataclass(frozen=True)
class Seller:
    name: str
    address_lines: tuple[str, ...]
    country: str  # ISO 3166-1 alpha-2
    vat_number: str | None = None
    logo: Logo | None = None
    email: str | None = None
    # Company register entry or other legal registration, e.g. "HRB 123456, Amtsgericht München".
    registration: str | None = None


@dataclass(frozen=True)
class Buyer:
    """The customer's billing details as they were when the document was finalized."""

    name: str
    address_lines: tuple[str, ...]
    country: str  # ISO 3166-1 alpha-2
    company: str | None = None
    tax_id: str | None = None
    email: str | None = None

    @property
    def legal_name(self) -> str:
        """The party the document is addressed to: the company when there is one."""
        return self.company or self.name


@dataclass(frozen=True)
class Period:
    """A service period as printed: both dates included (1 March - 31 March)."""

    start: date
    end: date

    def __post_init__(self) -> None:
        if self.end < self.start:
            raise InvalidDocument(f"period ends ({self.end}) before it starts ({self.start})")

    @classmethod
    def from_datetimes(cls, start: datetime, end_exclusive: datetime) -> Period:
        """A billing period stored as ``[start, end)`` UTC instants -> the calendar days it covers."""
        return cls(start.date(), (end_exclusive - timedelta(microseconds=1)).date())


@dataclass(frozen=True)
class Line:
    """One charge or credit. A credit has a negative unit price and amount."""

    description: str
    kind: LineKind
    quantity: int
    unit_price_cents: int
    amount_cents: int
    tax_category: TaxCategory
    tax_rate_bp: int  # basis points: 1900 = 19%
    period: Period | None = None

    def __post_init__(self) -> None:
        if self.quantity <= 0:
            raise InvalidDocument(f"line {self.description!r}: quantity must be positive")
        if self.quantity * self.unit_price_cents != self.amount_cents:
            raise InvalidDocument(
                f"line {self.description!r}: {self.quantity} x {self.unit_price_cents} != {self.amount_cents}"
            )


@dataclass(frozen=True)
class TaxLine:
    """One row of the VAT breakdown: every line with this category and rate, and their tax."""

    category: TaxCategory
    rate_bp: int
    taxable_cents: int
    tax_cents: int
    exemption_reason: str | None = None

    def __post_init__(self) -> None:
        if self.category is not TaxCategory.STANDARD and (self.rate_bp or self.tax_cents):
            raise InvalidDocument(f"VAT category {self.category.value} is charged at 0%")
        if self.category.needs_reason and not self.exemption_reason:
            raise InvalidDocument(f"VAT category {self.category.value} needs an exemption reason")

    @classmethod
    def standard(cls, rate_bp: int, taxable_cents: int, tax_cents: int) -> TaxLine:
        """VAT charged at ``rate_bp`` (the billing domain computed and rounded ``tax_cents``)."""
        return cls(TaxCategory.STANDARD, rate_bp, taxable_cents, tax_cents)

    @classmethod
    def reverse_charge(cls, taxable_cents: int) -> TaxLine:
        """EU B2B in another member state: 0% here, the legal mention on the document."""
        return cls(TaxCategory.REVERSE_CHARGE, 0, taxable_cents, 0, REVERSE_CHARGE_MENTION)

    @classmethod
    def outside_scope(cls, taxable_cents: int) -> TaxLine:
        """A customer outside the EU: the service is supplied where they are, no EU VAT."""
        return cls(TaxCategory.OUTSIDE_SCOPE, 0, taxable_cents, 0, OUTSIDE_SCOPE_MENTION)


@dataclass(frozen=True)
class PaymentMethod:
    brand: str  # "visa", "mastercard", ... as Stripe names it
    last4: str

    def __post_init__(self) -> None:
        if len(self.last4) != 4 or not self.last4.isdigit():
            raise InvalidDocument("a card is printed by its last 4 digits only")


@dataclass(frozen=True)
class Document:
    """An invoice or a credit note, final: the same value always prints the same PDF."""

    kind: DocumentKind
    number: str
    issue_date: date
    currency: str  # ISO 4217
    seller: Seller
    buyer: Buyer
    lines: tuple[Line, ...]
    tax_lines: tuple[TaxLine, ...]
    subtotal_cents: int
    tax_cents: int
    total_cents: int
    status: PaymentStatus
    service_period: Period | None = None
    due_date: date | None = None
    paid_date: date | None = None
    payment_method: PaymentMethod | None = None
    # A credit note says which invoice it credits and why.
    credited_invoice_number: str | None = None
    credited_invoice_date: date | None = None
    reason: str | None = None
    locale: str = "en"
    extra_notes: tuple[str, ...] = field(default_factory=tuple)

    def __post_init__(self) -> None:
        if len(self.currency) != 3 or not self.currency.isalpha():
            raise InvalidDocument(f"not an ISO 4217 currency: {self.currency!r}")
        if not self.lines:
            raise InvalidDocument("a document has at least one line")
        if self.is_credit_note != bool(self.credited_invoice_number):
            raise InvalidDocument("a credit note, and only a credit note, references the invoice it credits")
        if self.status is PaymentStatus.PAID and self.paid_date is None:
            raise InvalidDocument("a paid document says when it was paid")
        _check_totals(self)

    @property
    def is_credit_note(self) -> bool:
        """Whether this is a credit note (refund) rather than an invoice."""
        return self.kind is DocumentKind.CREDIT_NOTE

    @property
    def reverse_charge(self) -> bool:
        """Whether the reverse-charge mention applies (an EU B2B customer in another member state)."""
        return any(t.category is TaxCategory.REVERSE_CHARGE for t in self.tax_lines)

    @property
    def amount_due_cents(self) -> int:
        """What the customer still owes on this document (nothing once paid, refunded or void)."""
        return self.total_cents if self.status is PaymentStatus.OPEN and not self.is_credit_note else 0


def _check_totals(doc: Document) -> None:
    """Lines add up to the subtotal, each VAT row to its lines, and subtotal + tax to the total."""
    if sum(line.amount_cents for line in doc.lines) != doc.subtotal_cents:
        raise InvalidDocument("the lines do not add up to the subtotal")
    if sum(t.tax_cents for t in doc.tax_lines) != doc.tax_cents:
        raise InvalidDocument("the VAT breakdown does not add up to the tax")
    if doc.subtotal_cents + doc.tax_cents != doc.total_cents:
        raise InvalidDocument("subtotal + tax != total")
    bases = _bases(doc.lines)
    rows = {(t.category, t.rate_bp): t.taxable_cents for t in doc.tax_lines}
    if len(rows) != len(doc.tax_lines) or rows != bases:
        raise InvalidDocument(f"the VAT breakdown {rows} does not match the lines {bases}")


def _bases(lines: Iterable[Line]) -> dict[tuple[TaxCategory, int], int]:
    bases: dict[tuple[TaxCategory, int], int] = {}
    for line in lines:
        key = (line.tax_category, line.tax_rate_bp)
        bases[key] = bases.get(key, 0) + line.amount_cents
    return bases
