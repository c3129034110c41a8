"""Proration properties, each over 1,000+ generated cases (hypothesis): the preview is what is
invoiced, a credit never exceeds what was paid for the unused time, an upgrade reversed at once
never costs more than the higher plan, and totals are the sum of their lines."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from fractions import Fraction

from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from dicomportal.accounts import create_user
from dicomportal.billing.changes import quote
from dicomportal.billing.errors import PlanChangeNotAllowed
from dicomportal.billing.invoicing import create_invoice, finalize
from dicomportal.billing.proration import days_left, prorate, totals, unused_share
from dicomportal.extensions import db
from dicomportal.models import (
    BillingProfile,
    BillingReason,
    Interval,
    Price,
    Subscription,
    SubscriptionStatus,
    User,
)
from tests.helpers.stripe import price_id

MANY = settings(max_examples=1000, deadline=None)
cents = st.integers(min_value=0, max_value=10_000_000)
rates = st.integers(min_value=0, max_value=2_700)  # 0% to 27% in basis points
starts = st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1), timezones=st.just(UTC))


@st.composite
def periods(draw: st.DrawFn) -> tuple[datetime, datetime, datetime]:
    start = draw(starts)
    end = start + timedelta(days=draw(st.sampled_from([28, 29, 30, 31, 365, 366])))
    at = start + timedelta(seconds=draw(st.integers(0, int((end - start).total_seconds()))))
    return start, end, at


@MANY
@given(periods(), cents, rates, st.lists(st.integers(-10_000_000, 10_000_000), max_size=6))
def test_an_invoice_total_is_the_sum_of_its_lines_plus_tax_on_a_positive_subtotal(
    period: tuple[datetime, datetime, datetime], _amount: int, rate: int, lines: list[int]
) -> None:
    figures = totals(lines, rate)
    assert figures.subtotal_cents == sum(lines)
    assert figures.total_cents == figures.subtotal_cents + figures.tax_cents
    assert figures.tax_cents == 0 if sum(lines) <= 0 else figures.tax_cents >= 0


@MANY
@given(periods(), cents)
def test_a_credit_never_exceeds_what_was_paid_for_the_unused_time(
    period: tuple[datetime, datetime, datetime], paid: int
) -> None:
    start, end, at = period
    left, whole = days_left(start, end, at)
    credit = unused_share(paid, start, end, at)
    assert 0 <= credit <= paid
    assert Fraction(credit) <= Fraction(paid * left, whole)  # exact share of the unused days


@MANY
@given(periods(), cents, cents)
def test_an_upgrade_reversed_at_once_never_costs_more_than_the_higher_plan_for_the_period(
    period: tuple[datetime, datetime, datetime], low: int, high: int
) -> None:
    low, high = sorted((low, high))
    start, end, at = period
    left, whole = days_left(start, end, at)
    upgrade_charge = prorate(high, left, whole) - prorate(low, left, whole)
    # The downgrade back is scheduled for the period end with no refund: what the period cost is
    # the lower plan's price plus the upgrade's difference.
    assert upgrade_charge >= 0
    assert low + upgrade_charge <= high


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    periods(),
    st.sampled_from(["patient", "professional", "md"]),
    st.sampled_from(["patient", "professional", "md"]),
    st.sampled_from([Interval.MONTH, Interval.YEAR]),
    st.sampled_from(["US", "DE", "FR", "GB"]),
)
def test_the_previewed_amount_is_the_invoiced_amount(
    app: Flask,
    period: tuple[datetime, datetime, datetime],
    current_code: str,
    target_code: str,
    target_interval: Interval,
    country: str,
) -> None:
    start, end, at = period
    user = db.session.scalar(select(User)) or _customer()
    user.billing_profile.country = country
    current = db.session.get_one(Price, price_id(current_code, Interval.MONTH))
    target = db.session.get_one(Price, price_id(target_code, target_interval))
    subscription = Subscription(
        user=user,
        price=current,
        status=SubscriptionStatus.ACTIVE,
        current_period_start=start,
        current_period_end=end,
        billing_anchor=start,
    )
    try:
        change = quote(subscription, target, at)
    except PlanChangeNotAllowed:
        return
    if change.effective_now:
        invoice = finalize(
            create_invoice(user, list(change.lines), BillingReason.SUBSCRIPTION_UPDATE), app.config
        )
        assert invoice.total_cents == change.charge.total_cents
        assert [line.amount_cents for line in invoice.lines] == [line.amount_cents for line in change.lines]
    db.session.rollback()


def _customer() -> User:
    user = create_user("prop@example.com", "correct horse battery", "Prop Erty")
    user.billing_profile = BillingProfile(
        name="Prop Erty", address_line1="1 Main St", city="Berlin", postal_code="10115", country="DE"
    )
    db.session.commit()
    return user
