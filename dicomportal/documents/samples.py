"""Sample documents from a seller in Germany: the tests, the benchmark and docs/images use them.

Amounts are USD cents (the catalog's currency); tax is as ``billing`` decides it for each buyer:
a German company pays German VAT, a French company with a VAT number is reverse-charged, a French
consumer pays French VAT, a US customer pays no EU VAT (outside the scope).
"""

from __future__ import annotations

from datetime import date

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

MARCH = Period(date(2026, 3, 1), date(2026, 3, 31))
VISA = PaymentMethod("visa", "4242")


def seller() -> Seller:
    """DICOM Portal GmbH, Berlin, with its VAT number, register entry and the default logo."""
    return Seller(
        name="DICOM Portal GmbH",
        address_lines=("Friedrichstraße 123", "10117 Berlin"),
        country="DE",
        vat_number="DE136695976",
        logo=default_logo(),
        email="billing@dicomportal.example",
        registration="HRB 234567 B",
    )


GERMAN_COMPANY = Buyer(
    name="Dr. Anna Weber",
    company="Radiologie am See GmbH",
    address_lines=("Seestraße 5", "80802 München"),
    country="DE",
    tax_id="DE811907980",
    email="praxis@radiologie-am-see.example",
)
FRENCH_COMPANY = Buyer(
    name="Camille Martin",
    company="Clinique du Parc SAS",
    address_lines=("12 avenue du Parc", "69006 Lyon"),
    country="FR",
    tax_id="FR40303265045",
)
FRENCH_CONSUMER = Buyer(name="Léa Dubois", address_lines=("3 rue des Lilas", "75011 Paris"), country="FR")
US_COMPANY = Buyer(
    name="Jordan Lee",
    company="Lakeside Imaging LLC",
    address_lines=("200 Lake Street", "Suite 400", "Chicago, IL 60601"),
    country="US",
    tax_id="12-3456789",
)


def _line(
    description: str,
    kind: LineKind,
    unit_cents: int,
    tax: TaxCategory,
    rate_bp: int,
    quantity: int = 1,
    period: Period | None = MARCH,
) -> Line:
    return Line(description, kind, quantity, unit_cents, quantity * unit_cents, tax, rate_bp, period)


def renewal_invoice() -> Document:
    """A monthly renewal for a German company: plan, storage add-on, last month's overage, 19% VAT."""
    lines = (
        _line("Professional plan, monthly", LineKind.PLAN, 7900, TaxCategory.STANDARD, 1900),
        _line("Extra storage, 100 GB", LineKind.ADDON, 1000, TaxCategory.STANDARD, 1900),
        _line(
            "Viewer credits beyond the allowance",
            LineKind.OVERAGE,
            25,
            TaxCategory.STANDARD,
            1900,
            quantity=120,
            period=Period(date(2026, 2, 1), date(2026, 2, 28)),
        ),
    )
    return Document(
        kind=DocumentKind.INVOICE,
        number="DP-2026-000042",
        issue_date=date(2026, 3, 1),
        currency="USD",
        seller=seller(),
        buyer=GERMAN_COMPANY,
        lines=lines,
        tax_lines=(TaxLine.standard(1900, 11900, 2261),),
        subtotal_cents=11900,
        tax_cents=2261,
        total_cents=14161,
        status=PaymentStatus.PAID,
        service_period=MARCH,
        due_date=date(2026, 3, 1),
        paid_date=date(2026, 3, 1),
        payment_method=VISA,
    )


def proration_invoice() -> Document:
    """An upgrade on 15 March for a French company: credit for the unused Clinic time, charge for
    the rest of the month on Professional; reverse charge."""
    rest = Period(date(2026, 3, 15), date(2026, 3, 31))
    ae = TaxCategory.REVERSE_CHARGE
    lines = (
        _line("Unused time on Clinic plan", LineKind.PRORATION, -2103, ae, 0, period=rest),
        _line("Remaining time on Professional plan", LineKind.PRORATION, 4333, ae, 0, period=rest),
    )
    return Document(
        kind=DocumentKind.INVOICE,
        number="DP-2026-000057",
        issue_date=date(2026, 3, 15),
        currency="USD",
        seller=seller(),
        buyer=FRENCH_COMPANY,
        lines=lines,
        tax_lines=(TaxLine.reverse_charge(2230),),
        subtotal_cents=2230,
        tax_cents=0,
        total_cents=2230,
        status=PaymentStatus.PAID,
        service_period=rest,
        due_date=date(2026, 3, 15),
        paid_date=date(2026, 3, 15),
        payment_method=PaymentMethod("mastercard", "4444"),
    )


def credit_note() -> Document:
    """A partial refund of the renewal invoice: the overage, with its VAT, back to the card."""
    feb = Period(date(2026, 2, 1), date(2026, 2, 28))
    lines = (
        _line(
            "Refund: viewer credits beyond the allowance",
            LineKind.CREDIT,
            25,
            TaxCategory.STANDARD,
            1900,
            quantity=120,
            period=feb,
        ),
    )
    return Document(
        kind=DocumentKind.CREDIT_NOTE,
        number="CN-2026-000007",
        issue_date=date(2026, 3, 9),
        currency="USD",
        seller=seller(),
        buyer=GERMAN_COMPANY,
        lines=lines,
        tax_lines=(TaxLine.standard(1900, 3000, 570),),
        subtotal_cents=3000,
        tax_cents=570,
        total_cents=3570,
        status=PaymentStatus.REFUNDED,
        paid_date=date(2026, 3, 9),
        payment_method=VISA,
        credited_invoice_number="DP-2026-000042",
        credited_invoice_date=date(2026, 3, 1),
        reason="Overage charged in error: the credits were used by a demo study.",
    )


def consumer_invoice() -> Document:
    """A French consumer's first month, due, at the French rate (20%)."""
    lines = (_line("Personal plan, monthly", LineKind.PLAN, 1900, TaxCategory.STANDARD, 2000),)
    return Document(
        kind=DocumentKind.INVOICE,
        number="DP-2026-000043",
        issue_date=date(2026, 3, 1),
        currency="USD",
        seller=seller(),
        buyer=FRENCH_CONSUMER,
        lines=lines,
        tax_lines=(TaxLine.standard(2000, 1900, 380),),
        subtotal_cents=1900,
        tax_cents=380,
        total_cents=2280,
        status=PaymentStatus.OPEN,
        service_period=MARCH,
        due_date=date(2026, 3, 8),
        payment_method=VISA,
    )


def export_invoice() -> Document:
    """A US company's annual plan: supplied where the customer is, so no EU VAT (category O)."""
    year = Period(date(2026, 3, 1), date(2027, 2, 28))
    lines = (_line("Clinic plan, annual", LineKind.PLAN, 190000, TaxCategory.OUTSIDE_SCOPE, 0, period=year),)
    return Document(
        kind=DocumentKind.INVOICE,
        number="DP-2026-000044",
        issue_date=date(2026, 3, 1),
        currency="USD",
        seller=seller(),
        buyer=US_COMPANY,
        lines=lines,
        tax_lines=(TaxLine.outside_scope(190000),),
        subtotal_cents=190000,
        tax_cents=0,
        total_cents=190000,
        status=PaymentStatus.PAID,
        service_period=year,
        due_date=date(2026, 3, 1),
        paid_date=date(2026, 3, 1),
        payment_method=PaymentMethod("amex", "0005"),
    )


def all_samples() -> dict[str, Document]:
    """Every sample by a short name."""
    return {
        "renewal": renewal_invoice(),
        "proration": proration_invoice(),
        "credit-note": credit_note(),
        "consumer": consumer_invoice(),
        "export": export_invoice(),
    }
