"""Money and dates as customers read them (templates, emails and documents use these).

Both are pure functions of their arguments, memoized: a page shows the same few amounts and days
over and over, and Babel's formatting is not cheap."""

from __future__ import annotations

from datetime import UTC, date, datetime
from decimal import Decimal
from functools import lru_cache

from babel.dates import format_date
from babel.numbers import format_currency


@lru_cache(maxsize=4096)
def format_money(amount_cents: int, currency: str = "USD", locale: str = "en_US") -> str:
    """``1999, "USD"`` -> ``"$19.99"``; whole amounts drop the cents (``"$20"``)."""
    amount = Decimal(amount_cents).scaleb(-2)
    pattern = "¤#,##0" if amount_cents % 100 == 0 else None
    return format_currency(amount, currency, format=pattern, locale=locale, currency_digits=pattern is None)


def format_day(moment: datetime, style: str = "long", locale: str = "en_US") -> str:
    """The calendar day of a UTC moment as customers read it: ``"15 January 2027"``-style, by Babel.

    Billing days are UTC days (periods, renewals and invoices are dated in UTC)."""
    return _format_date(moment.astimezone(UTC).date(), style, locale)


@lru_cache(maxsize=4096)
def _format_date(day: date, style: str, locale: str) -> str:
    return format_date(day, format=style, locale=locale)
