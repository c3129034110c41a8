"""Money math, billing periods and tax: the rules an invoice is built from."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from dicomportal.billing.periods import next_period, period_boundary
from dicomportal.billing.proration import apply_rate, prorate, unused_share
from dicomportal.billing.tax import REVERSE_CHARGE_NOTE, tax_for
from dicomportal.models import BillingProfile, Interval

CONFIG: dict[str, Any] = {"SELLER_COUNTRY": "AU", "TAX_RATES": {"DE": 1900, "AU": 1000}}


def profile(country: str, tax_id: str | None = None) -> BillingProfile:
    return BillingProfile(name="A", address_line1="x", city="y", country=country, tax_id=tax_id)


def test_monthly_periods_keep_the_billing_day_through_short_months() -> None:
    anchor = datetime(2026, 1, 31, 12, 0, tzinfo=UTC)
    ends = [period_boundary(anchor, Interval.MONTH, n) for n in (1, 2, 3)]
    assert [e.date().isoformat() for e in ends] == ["2026-02-28", "2026-03-31", "2026-04-30"]
    assert next_period(anchor, Interval.MONTH, ends[0]) == (ends[0], ends[1])


def test_annual_period_from_a_leap_day() -> None:
    anchor = datetime(2028, 2, 29, tzinfo=UTC)
    assert period_boundary(anchor, Interval.YEAR, 1).date().isoformat() == "2029-02-28"


@pytest.mark.parametrize(
    ("amount", "rate", "expected"),
    [(2900, 1900, 551), (1, 5000, 1), (3, 1650, 0), (105, 1000, 11), (0, 1900, 0)],
)
def test_tax_rounds_half_up_to_the_cent(amount: int, rate: int, expected: int) -> None:
    assert apply_rate(amount, rate) == expected


def test_proration_rounds_each_share_down_to_the_cent() -> None:
    assert prorate(2900, 15, 30) == 1450
    assert prorate(1000, 1, 3) == 333
    assert prorate(1000, 2, 3) == 666  # down, never half up: a credit never exceeds the exact share
    assert prorate(1000, 1, 3) + prorate(1000, 2, 3) <= 1000
    start, end = datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 31, tzinfo=UTC)
    assert unused_share(3000, start, end, datetime(2026, 1, 16, tzinfo=UTC)) == 1500
    assert unused_share(3000, start, end, end) == 0


def test_tax_by_country_and_zero_by_default() -> None:
    assert tax_for(profile("DE"), CONFIG).rate_bp == 1900
    assert tax_for(profile("US"), CONFIG).rate_bp == 0
    assert tax_for(None, CONFIG).rate_bp == 0


def test_eu_business_with_a_valid_vat_number_abroad_is_reverse_charged() -> None:
    decision = tax_for(profile("DE", "DE136695976"), CONFIG)
    assert decision.rate_bp == 0 and decision.note == REVERSE_CHARGE_NOTE


def test_an_invalid_vat_number_pays_the_local_rate() -> None:
    assert tax_for(profile("DE", "DE000000000"), CONFIG).rate_bp == 1900
    assert tax_for(profile("DE", "FR40303265045"), CONFIG).rate_bp == 1900  # another country's number
