"""Pure money math in integer cents: every rounding in billing goes through this module.

The rounding rule, stated once: every fraction of a cent is rounded half up (away from zero for
positive amounts, which are the only ones these functions take); a prorated credit and the charge
it offsets are rounded independently, so each printed line is exact and the total is their sum.
The one exception is a percentage promised to a customer ("save 40%"), which is rounded down so
it never promises more than is saved.
"""

from __future__ import annotations

from datetime import datetime


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


def prorate(amount_cents: int, part_seconds: int, whole_seconds: int) -> int:
    """The share of ``amount_cents`` for ``part_seconds`` out of a period of ``whole_seconds``."""
    part = max(0, min(part_seconds, whole_seconds))
    return divide_half_up(amount_cents * part, whole_seconds)


def unused_share(amount_cents: int, start: datetime, end: datetime, at: datetime) -> int:
    """What is left of ``amount_cents`` paid for ``start``..``end`` when stopping at ``at``."""
    whole = int((end - start).total_seconds())
    return prorate(amount_cents, int((end - at).total_seconds()), whole)
