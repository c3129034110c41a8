"""Presentation helpers shared by templates and emails."""

from __future__ import annotations

from decimal import Decimal

from babel.numbers import format_currency


def format_money(amount_cents: int, currency: str = "USD", locale: str = "en_US") -> str:
    """``1999, "USD"`` -> ``"$19.99"``; whole amounts drop the cents (``"$20"``)."""
    amount = Decimal(amount_cents).scaleb(-2)
    pattern = "¤#,##0" if amount_cents % 100 == 0 else None
    return format_currency(amount, currency, format=pattern, locale=locale, currency_digits=pattern is None)
