"""A subscribed customer for bench/run.py to load ``/account/`` as, written straight to the database.

``python bench/customer.py`` with the benchmark's environment (DATABASE_URL of a migrated, seeded
database). No Stripe call: the subscription, the card mirror and the paid invoices are rows the
portal would have after a successful subscribe and four renewals, so the dashboard renders what a
real customer's does (plan, card, last five invoices) without localstripe running.
"""

from __future__ import annotations

from dateutil.relativedelta import relativedelta
from flask import current_app
from sqlalchemy import select

from dicomportal import clock, create_app
from dicomportal.accounts import create_user
from dicomportal.billing.invoicing import create_invoice, finalize, mark_paid
from dicomportal.billing.periods import period_boundary
from dicomportal.billing.subscriptions import plan_line
from dicomportal.extensions import db
from dicomportal.models import (
    BillingProfile,
    BillingReason,
    Interval,
    PaymentMethod,
    Plan,
    Price,
    Subscription,
    SubscriptionStatus,
    User,
)

EMAIL = "bench-customer@example.com"
PASSWORD = "bench-only-password"  # a throwaway database that lives as long as one run
PLAN_NAME = "Professional"  # the dashboard must show it, or the run measured the wrong page
PAID_INVOICES = 5


def professional_monthly() -> Price:
    """The Professional plan's active monthly price from the seeded catalog."""
    price: Price | None = db.session.scalar(
        select(Price)
        .join(Plan)
        .where(Plan.code == "professional", Price.interval == Interval.MONTH, Price.active.is_(True))
    )
    if price is None:
        raise SystemExit("no active Professional monthly price: was the catalog seeded?")
    return price


def add_profile_and_card(user: User) -> None:
    """Billing details (copied onto invoices) and a default card mirror row (no card number)."""
    db.session.add(
        BillingProfile(
            user_id=user.id, name=user.name, address_line1="1 Bench Street", city="Austin", country="US"
        )
    )
    db.session.add(
        PaymentMethod(
            user_id=user.id,
            stripe_payment_method_id="pm_bench_fake_visa",
            brand="visa",
            last4="4242",
            exp_month=12,
            exp_year=2030,
            is_default=True,
        )
    )


def add_subscription(user: User, price: Price) -> Subscription:
    """An active monthly subscription whose current period started now."""
    now = clock.now()
    subscription = Subscription(
        user_id=user.id,
        price_id=price.id,
        status=SubscriptionStatus.ACTIVE,
        current_period_start=now,
        current_period_end=period_boundary(now, price.interval, 1),  # the portal's own period rule
        billing_anchor=now,
    )
    db.session.add(subscription)
    db.session.flush()
    return subscription


def add_paid_invoices(user: User, subscription: Subscription, price: Price) -> None:
    """Invoices for the current period and the ones before it, oldest numbered first, all paid."""
    start = subscription.current_period_start
    for months_back in range(PAID_INVOICES - 1, -1, -1):
        period = (start - relativedelta(months=months_back), start - relativedelta(months=months_back - 1))
        invoice = create_invoice(
            user, [plan_line(price, *period)], BillingReason.SUBSCRIPTION_CYCLE, subscription, period
        )
        finalize(invoice, current_app.config)
        mark_paid(invoice, invoice.total_cents)


def seed_customer() -> None:
    """Create the benchmark customer with everything the dashboard shows, and commit."""
    user = create_user(EMAIL, PASSWORD, "Bench Customer")
    add_profile_and_card(user)
    price = professional_monthly()
    subscription = add_subscription(user, price)
    add_paid_invoices(user, subscription, price)
    db.session.commit()


if __name__ == "__main__":
    with create_app().app_context():
        seed_customer()
