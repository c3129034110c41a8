"""The invoice history page: newest first, by year and status, a page at a time."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from dicomportal.billing.history import Cursor
from dicomportal.extensions import db
from dicomportal.models import BillingReason, Invoice, InvoiceStatus, User
from tests.billing.test_query_plans import plan_of, statements
from tests.helpers.auth import AuthActions

PASSWORD = "correct horse battery"
DASH = "\N{EN DASH}"
NUMBER = re.compile(r'<th scope="row" class="inv-number">(DP-[\d-]+)</th>')


def text_of(response: Any) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))).split())


def add_invoices(
    user: User, count: int, start: datetime, status: Callable[[int], InvoiceStatus]
) -> list[Invoice]:
    """``count`` finalized invoices a month apart from ``start`` (oldest first)."""
    made = []
    for n in range(count):
        at = start + timedelta(days=30 * n)
        made.append(
            Invoice(
                user_id=user.id,
                number=f"DP-{at.year}-{user.id:02d}{n:04d}",
                status=status(n),
                billing_reason=BillingReason.SUBSCRIPTION_CYCLE,
                subtotal_cents=1000,
                tax_cents=190,
                total_cents=1190,
                amount_paid_cents=1190 if status(n) == InvoiceStatus.PAID else 0,
                tax_rate_bp=1900,
                period_start=at,
                period_end=at + timedelta(days=30),
                finalized_at=at,
            )
        )
    db.session.add_all(made)
    db.session.commit()
    return made


def paid_or_open(n: int) -> InvoiceStatus:
    return InvoiceStatus.OPEN if n % 5 == 4 else InvoiceStatus.PAID


def test_history_pages_newest_first_and_back(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    made = add_invoices(user, 45, datetime(2024, 1, 10, tzinfo=UTC), paid_or_open)
    newest_first = [i.number for i in reversed(made)]
    auth.login(user.email, PASSWORD)

    first = client.get("/billing/invoices")
    assert NUMBER.findall(first.get_data(as_text=True)) == newest_first[:20]
    older = re.search(r'href="([^"]+before=[^"]+)"', first.get_data(as_text=True))
    assert older and "Newer invoices" not in text_of(first)

    second = client.get(html.unescape(older.group(1)))
    assert NUMBER.findall(second.get_data(as_text=True)) == newest_first[20:40]
    newer = re.search(r'href="([^"]+after=[^"]+)"', second.get_data(as_text=True))
    assert newer

    back = client.get(html.unescape(newer.group(1)))
    assert NUMBER.findall(back.get_data(as_text=True)) == newest_first[:20]


def test_each_row_shows_date_period_amount_tax_status_and_actions(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    made = add_invoices(user, 5, datetime(2026, 1, 10, tzinfo=UTC), paid_or_open)
    auth.login(user.email, PASSWORD)

    response = client.get("/billing/invoices")

    text = text_of(response)
    assert f"{made[4].number} Jan 10, 2026" not in text  # the newest is May's
    assert (
        f"{made[4].number} May 10, 2026 May 10 {DASH} Jun 9, 2026 $11.90 $1.90 Due Download PDF Pay now"
        in text
    )
    assert f"{made[3].number} Apr 10, 2026 Apr 10 {DASH} May 10, 2026 $11.90 $1.90 Paid Download PDF" in text
    markup = response.get_data(as_text=True)
    assert f'href="/billing/invoices/{made[3].id}/pdf"' in markup
    assert markup.count("Pay now") == 1 and 'href="/billing/card"' in markup


def test_filters_by_year_and_status_and_htmx_gets_the_partial(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    made = add_invoices(user, 30, datetime(2024, 1, 10, tzinfo=UTC), paid_or_open)
    auth.login(user.email, PASSWORD)

    in_2025 = NUMBER.findall(client.get("/billing/invoices?year=2025").get_data(as_text=True))
    open_ones = NUMBER.findall(client.get("/billing/invoices?status=open").get_data(as_text=True))
    partial = client.get("/billing/invoices?year=2024&status=open", headers={"HX-Request": "true"})

    assert in_2025 == [i.number for i in reversed(made) if i.finalized_at and i.finalized_at.year == 2025]
    assert open_ones == [i.number for i in reversed(made) if i.status == InvoiceStatus.OPEN]
    markup = partial.get_data(as_text=True)
    assert markup.lstrip().startswith('<section id="invoice-history"') and "<html" not in markup
    assert NUMBER.findall(markup) == [
        i.number
        for i in reversed(made)
        if i.status == InvoiceStatus.OPEN and i.finalized_at and i.finalized_at.year == 2024
    ]
    assert "HX-Request" in partial.headers["Vary"]
    years = re.findall(r'<option value="(\d{4})"', markup)
    assert years == ["2026", "2025", "2024"]


def test_history_shows_only_the_customers_own_invoices(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    mine, theirs = make_customer(), make_customer()
    add_invoices(theirs, 3, datetime(2026, 1, 10, tzinfo=UTC), paid_or_open)
    auth.login(mine.email, PASSWORD)

    response = client.get("/billing/invoices")

    assert NUMBER.findall(response.get_data(as_text=True)) == []
    assert "No invoices yet" in text_of(response)
    assert client.get("/billing/invoices?before=not-a-cursor").status_code == 404


def test_history_pages_are_read_along_indexes_never_sorted(
    app: Flask, client: FlaskClient, auth: AuthActions, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    made = add_invoices(user, 25, datetime(2024, 1, 10, tzinfo=UTC), paid_or_open)
    auth.login(user.email, PASSWORD)
    cursor = Cursor.of(made[12]).token()

    for query, index in [
        ("", "ix_invoices_user_finalized"),
        (f"?before={cursor}", "ix_invoices_user_finalized"),
        (f"?after={cursor}", "ix_invoices_user_finalized"),
        ("?status=paid", "ix_invoices_user_status_finalized"),
        ("?status=paid&year=2025", "ix_invoices_user_"),  # either index bounds the year
    ]:
        with statements() as seen:
            assert client.get(f"/billing/invoices{query}").status_code == 200
        page = plan_of(seen, "SELECT invoices.id, invoices.number", "LIMIT")
        assert index in page, (query, page)
        assert "TEMP B-TREE" not in page and "Sort" not in page, (query, page)
        edge = plan_of(seen, "SELECT invoices.finalized_at", "ORDER BY invoices.finalized_at DESC")
        assert "ix_invoices_user_finalized" in edge, edge  # the years: one step along the index
