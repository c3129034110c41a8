"""A document whose figures do not add up is refused before anything is printed."""

from __future__ import annotations

import dataclasses
from datetime import UTC, date, datetime

import pytest

from dicomportal.documents import (
    Document,
    DocumentKind,
    InvalidDocument,
    Line,
    LineKind,
    PaymentMethod,
    PaymentStatus,
    Period,
    TaxCategory,
    TaxLine,
    samples,
)


def test_consistent_samples_are_accepted() -> None:
    assert all(isinstance(d, Document) for d in samples.all_samples().values())


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"subtotal_cents": 11901, "total_cents": 14162}, "lines do not add up"),
        ({"tax_cents": 2260, "total_cents": 14160}, "VAT breakdown does not add up"),
        ({"total_cents": 14000}, "subtotal \\+ tax != total"),
        ({"tax_lines": (TaxLine.standard(2000, 11900, 2261),)}, "does not match the lines"),
        ({"credited_invoice_number": "DP-2026-000001"}, "references the invoice"),
        ({"kind": DocumentKind.CREDIT_NOTE}, "references the invoice"),
        ({"currency": "US$"}, "ISO 4217"),
        ({"lines": ()}, "at least one line"),
        ({"paid_date": None}, "says when it was paid"),
    ],
)
def test_inconsistent_invoice_is_refused(change: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidDocument, match=message):
        dataclasses.replace(samples.renewal_invoice(), **change)  # type: ignore[arg-type]


def test_line_amount_must_be_quantity_times_unit_price() -> None:
    with pytest.raises(InvalidDocument, match="120 x 25 != 2999"):
        Line("Credits", LineKind.OVERAGE, 120, 25, 2999, TaxCategory.STANDARD, 1900)


def test_zero_rate_categories_carry_no_tax_and_state_why() -> None:
    with pytest.raises(InvalidDocument, match="charged at 0%"):
        TaxLine(TaxCategory.REVERSE_CHARGE, 1900, 1000, 190, "Reverse charge")
    with pytest.raises(InvalidDocument, match="exemption reason"):
        TaxLine(TaxCategory.OUTSIDE_SCOPE, 0, 1000, 0)


def test_only_the_last_four_digits_of_a_card_are_accepted() -> None:
    with pytest.raises(InvalidDocument, match="last 4 digits"):
        PaymentMethod("visa", "4242424242424242")


def test_reverse_charge_follows_the_vat_breakdown() -> None:
    assert samples.proration_invoice().reverse_charge
    assert not samples.renewal_invoice().reverse_charge


def test_billing_period_instants_become_the_days_they_cover() -> None:
    period = Period.from_datetimes(datetime(2026, 3, 1, tzinfo=UTC), datetime(2026, 4, 1, tzinfo=UTC))

    assert period == Period(date(2026, 3, 1), date(2026, 3, 31))


def test_amount_due_is_the_total_only_while_open() -> None:
    assert samples.consumer_invoice().amount_due_cents == 2280
    assert samples.renewal_invoice().amount_due_cents == 0
    assert dataclasses.replace(samples.consumer_invoice(), status=PaymentStatus.VOID).amount_due_cents == 0
