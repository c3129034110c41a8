"""Pure money math in integer cents: every rounding in billing goes through this module.

The rounding rule, stated once: a share of a price for part of a period (a proration: the credit
for unused time, the charge for the rest of a period on a new plan) is rounded DOWN to the cent,
each line on its own, so a credit never exceeds what was paid for the unused time, a charge never
exceeds the exact share, and an invoice's total is exactly the sum of its printed lines.
Periods are prorated by whole UTC days (the day of the change counts as unused on the old plan),
so a preview shown in the morning is the amount invoiced that evening.
Everything else that divides (tax, "per month" equivalents) is rounded half up; a percentage
promised to a customer ("save 40%") is rounded down so it never promises more than is saved.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime


def divide_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half up to a whole cent."""
    if numerator < 0 or denominator <= 0:
        raise ValueError("amounts here are non-negative and denominators positive")
    return (2 * numerator + denominator) // (2 * denominator)


def percent_down(part: int, whole: int) -> int:
    """``part`` as a whole percentage of ``whole``, rounded down (a saving we promise)."""
    if part < 0 or whole <= 0:
        raise ValueError("amounts here are non-negative and wholes positive")
    return part * 100 // whole


def apply_rate(amount_cents: int, rate_bp: int) -> int:
    """``amount_cents`` x ``rate_bp`` basis points (1900 = 19%), rounded half up to the cent."""
    return divide_half_up(amount_cents * rate_bp, 10_000)


def prorate(amount_cents: int, part: int, whole: int) -> int:
    """The share of ``amount_cents`` for ``part`` out of ``whole`` (days), rounded down."""
    if amount_cents < 0 or whole <= 0:
        raise ValueError("amounts here are non-negative and periods positive")
    return amount_cents * max(0, min(part, whole)) // whole


def days_left(start: datetime, end: datetime, at: datetime) -> tuple[int, int]:
    """(unused days, days in the period) of ``start``..``end`` at ``at``, by UTC calendar day."""
    whole = max(1, (end.astimezone(UTC).date() - start.astimezone(UTC).date()).days)
    left = (end.astimezone(UTC).date() - at.astimezone(UTC).date()).days
    return max(0, min(left, whole)), whole


def unused_share(amount_cents: int, start: datetime, end: datetime, at: datetime) -> int:
    """What is left of ``amount_cents`` paid for ``start``..``end`` when stopping at ``at``."""
    return prorate(amount_cents, *days_left(start, end, at))


@dataclass(frozen=True)
class Totals:
    subtotal_cents: int
    tax_cents: int
    total_cents: int


def totals(line_amounts: list[int], tax_rate_bp: int) -> Totals:
    """An invoice's subtotal (the sum of its lines), tax on it (none on a credit) and total."""
    subtotal = sum(line_amounts)
    tax = apply_rate(max(subtotal, 0), tax_rate_bp)
    return Totals(subtotal, tax, subtotal + tax)
