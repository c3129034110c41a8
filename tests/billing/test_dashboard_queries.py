"""The account dashboard costs the same few queries whatever the length of a customer's history."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event, insert

from dicomportal import clock
from dicomportal.extensions import db
from dicomportal.models import BillingReason, Invoice, InvoiceStatus, Subscription, User
from tests.helpers.auth import AuthActions


def dashboard_statements(client: FlaskClient) -> int:
    seen: list[str] = []

    def count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        seen.append(statement)

    event.listen(db.engine, "before_cursor_execute", count)
    try:
        page = client.get("/account/")
    finally:
        event.remove(db.engine, "before_cursor_execute", count)
    assert page.status_code == 200 and "Professional" in page.get_data(as_text=True)
    return len(seen)


def add_paid_invoices(user: User, subscription: Subscription, count: int) -> None:
    now = clock.now()
    rows = [
        dict(
            number=f"DP-OLD-{n:06d}",
            user_id=user.id,
            subscription_id=subscription.id,
            status=InvoiceStatus.PAID,
            billing_reason=BillingReason.SUBSCRIPTION_CYCLE,
            currency="USD",
            subtotal_cents=2900,
            tax_cents=0,
            total_cents=2900,
            amount_paid_cents=2900,
            tax_rate_bp=0,
            period_start=now - timedelta(days=30 * (n + 2)),
            period_end=now - timedelta(days=30 * (n + 1)),
            created_at=now - timedelta(days=30 * (n + 1)),
            finalized_at=now - timedelta(days=30 * (n + 1)),
            paid_at=now - timedelta(days=30 * (n + 1)),
            attempt_count=0,
        )
        for n in range(count)
    ]
    db.session.execute(insert(Invoice), rows)
    db.session.commit()


def test_the_dashboard_makes_as_many_queries_for_one_invoice_as_for_two_hundred(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    subscription = subscribe(user, "professional")
    auth.login(email=user.email)
    with_one = dashboard_statements(client)

    add_paid_invoices(user, subscription, 200)
    with_many = dashboard_statements(client)

    assert with_many == with_one
    # login session and profile; subscription with its plans; card; recent invoices; open ones;
    # the add-ons that renew with the plan (in the next charge)
    assert with_one <= 6
