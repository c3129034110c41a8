"""Billing periods: counted from an anchor so a subscription keeps its billing day.

A monthly subscription started on 31 January renews on 28/29 February, then on 31 March: each
period end is ``anchor + n months`` (clamped to the month's last day), never ``previous end + 1 month``.
"""

from __future__ import annotations

from datetime import datetime

from dateutil.relativedelta import relativedelta

from dicomportal.models import Interval


def period_boundary(anchor: datetime, interval: Interval, n: int) -> datetime:
    """The end of the ``n``-th period (``n`` = 1 is the first period's end)."""
    step = relativedelta(months=n) if interval == Interval.MONTH else relativedelta(years=n)
    result: datetime = anchor + step
    return result


def next_period(anchor: datetime, interval: Interval, current_end: datetime) -> tuple[datetime, datetime]:
    """The period that follows the one ending at ``current_end``."""
    n = 1
    while period_boundary(anchor, interval, n) <= current_end:
        n += 1
    return current_end, period_boundary(anchor, interval, n)
