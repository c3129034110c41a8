"""Does the dashboard slow down as a customer's invoice history grows?

    .venv/bin/python bench/account_scale.py [--db sqlite|postgresql] [--requests 300]

For 10 and for 10,000 paid invoices (written straight to a fresh database, as years of renewals
would leave them), logs the customer in through the real form and times ``GET /account/``
in-process with Flask's test client: the median and 90th percentile of ``--requests`` requests,
and the SQL statements per request. The ratio of the medians is the figure to watch (the issue's
target: within 1.2x). Results go to the top of bench/RESULTS.md. Never part of the test suite.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench.renewals import MARKER, RESULTS, SECRET, new_postgres_database  # noqa: E402

EMAIL, PASSWORD = "history@example.com", "bench-only-password"
START = dt.datetime(2016, 1, 15, 9, 0, tzinfo=dt.UTC)
CSRF = re.compile(r'name="csrf_token"[^>]*value="([^"]+)"')


def database(kind: str, invoices: int) -> str:
    if kind == "sqlite":
        return f"sqlite:///{tempfile.mkdtemp(prefix='bench-account-')}/account.db"
    return new_postgres_database(f"bench_account_{invoices}")


def seed(invoices: int, spacing: dt.timedelta = dt.timedelta(days=30)) -> None:
    """A monthly Professional customer with ``invoices`` paid invoices, one every ``spacing`` (a
    month) back from now, plus 200 other customers' invoices so the table is not only theirs."""
    from flask_migrate import upgrade
    from sqlalchemy import insert, select

    from dicomportal.accounts import create_user
    from dicomportal.billing.catalog import seed_catalog
    from dicomportal.extensions import db
    from dicomportal.models import (
        BillingProfile,
        BillingReason,
        Interval,
        Invoice,
        InvoiceStatus,
        PaymentMethod,
        Plan,
        Price,
        Subscription,
        SubscriptionStatus,
    )

    upgrade()
    seed_catalog()
    price = db.session.scalars(
        select(Price).join(Plan).where(Plan.code == "professional", Price.interval == Interval.MONTH)
    ).one()
    user = create_user(EMAIL, PASSWORD, "History Customer")
    other = create_user("other@example.com", PASSWORD, "Other Customer")
    user.billing_profile = BillingProfile(
        name="History Customer", address_line1="1 Main St", city="Springfield", postal_code="1", country="US"
    )
    now = dt.datetime.now(dt.UTC)
    subscription = Subscription(
        user=user,
        price=price,
        status=SubscriptionStatus.ACTIVE,
        current_period_start=now,
        current_period_end=now + dt.timedelta(days=30),
        billing_anchor=now,
    )
    db.session.add(subscription)
    db.session.flush()
    db.session.add(
        PaymentMethod(
            user_id=user.id,
            stripe_payment_method_id="pm_bench",
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=2035,
            is_default=True,
        )
    )
    rows = []
    for owner, count in ((user.id, invoices), (other.id, 200)):
        for n in range(count):
            moment = now - spacing * (n + 1)
            rows.append(
                dict(
                    number=f"DP-{owner}-{n:07d}",
                    user_id=owner,
                    subscription_id=subscription.id if owner == user.id else None,
                    status=InvoiceStatus.PAID,
                    billing_reason=BillingReason.SUBSCRIPTION_CYCLE,
                    currency="USD",
                    subtotal_cents=2900,
                    tax_cents=0,
                    total_cents=2900,
                    amount_paid_cents=2900,
                    tax_rate_bp=0,
                    period_start=moment,
                    period_end=moment + dt.timedelta(days=30),
                    created_at=moment,
                    finalized_at=moment,
                    paid_at=moment,
                    attempt_count=0,
                )
            )
    for chunk in range(0, len(rows), 2000):
        db.session.execute(insert(Invoice), rows[chunk : chunk + 2000])
    db.session.commit()
    db.session.execute(db.text("ANALYZE"))
    db.session.commit()


def measure(kind: str, invoices: int, requests: int) -> tuple[float, float, float]:
    from sqlalchemy import event

    from dicomportal import create_app
    from dicomportal.extensions import db

    url = database(kind, invoices)
    app = create_app({"SQLALCHEMY_DATABASE_URI": url, "SECRET_KEY": SECRET}, instance_path=tempfile.mkdtemp())
    with app.app_context():
        seed(invoices)
    client = app.test_client()
    form = client.get("/auth/login").get_data(as_text=True)
    token = CSRF.search(form).group(1)  # type: ignore[union-attr]
    answer = client.post("/auth/login", data={"email": EMAIL, "password": PASSWORD, "csrf_token": token})
    assert answer.status_code in (302, 303), answer.status_code
    page = client.get("/account/").get_data(as_text=True)
    assert "Professional" in page and "DP-" in page, "the dashboard did not show the customer's plan"
    statements = 0

    def count(*_args: object) -> None:
        nonlocal statements
        statements += 1

    with app.app_context():
        event.listen(db.engine, "before_cursor_execute", count)
    for _ in range(20):
        client.get("/account/")
    statements, times = 0, []
    for _ in range(requests):
        started = time.perf_counter()
        client.get("/account/")
        times.append(1000 * (time.perf_counter() - started))
    times.sort()
    with app.app_context():
        db.engine.dispose()
    return statistics.median(times), times[int(0.9 * len(times))], statements / requests


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument("--requests", type=int, default=300)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    before = " ".join(f"{x:.2f}" for x in os.getloadavg())
    results = {n: measure(args.db, n, args.requests) for n in (10, 10_000)}
    after = " ".join(f"{x:.2f}" for x in os.getloadavg())
    small, large = results[10][0], results[10_000][0]
    lines = [
        f"## {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC: `/account/` against invoice history "
        f"(`bench/account_scale.py --db {args.db}`)",
        "",
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}. Load average before: {before}, "
        f"after: {after}. In-process (Flask test client), {args.requests} requests after 20 to warm up.",
        "",
        "| database | customer's invoices | median ms | p90 ms | SQL statements per request |",
        "| --- | ---: | ---: | ---: | ---: |",
        *(
            f"| {args.db} | {n:,} | {median:.2f} | {p90:.2f} | {per:.0f} |"
            for n, (median, p90, per) in results.items()
        ),
        "",
        f"Ratio of medians, 10,000 invoices to 10: **{large / small:.2f}x**.",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    if not args.no_write:
        head, _, runs = RESULTS.read_text().partition(MARKER)
        RESULTS.write_text(f"{head}{MARKER}\n\n{text}\n{runs.lstrip()}")


if __name__ == "__main__":
    main()
