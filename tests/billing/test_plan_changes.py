"""Changing plan: the upgrade invoice, refusals that change nothing, and a double-clicked Confirm."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from sqlalchemy import update

from dicomportal.billing import changes
from dicomportal.billing.errors import PlanChangeNotAllowed, PlanNotAvailable
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.models import Interval, InvoiceStatus, PaymentStatus, Price, Subscription, User
from tests.billing.test_charging_safety import run_in_threads
from tests.billing.test_renewals import switch_card
from tests.helpers.stripe import DECLINED_AT_CHARGE, intents_of, price_id


def test_an_upgrade_charges_the_previewed_difference_at_once_and_keeps_the_period(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    sub = subscribe(user, "patient")
    period = (sub.current_period_start, sub.current_period_end)
    preview = changes.preview(user.id, sub.id, price_id("md"))
    assert preview.effective_now and [line.amount_cents for line in preview.lines] == [-900, 7900]

    changes.change_plan(user.id, sub.id, price_id("md"), preview.charge.total_cents)

    db.session.expire_all()
    assert sub.price.plan.code == "md" and (sub.current_period_start, sub.current_period_end) == period
    upgrade = max(invoices_for(user.id), key=lambda i: i.id)
    assert upgrade.total_cents == preview.charge.total_cents == 7000
    assert [(i.status, i.amount) for i in intents_of(app, user)] == [("succeeded", 900), ("succeeded", 7000)]


def test_twenty_concurrent_confirms_of_an_upgrade_make_one_invoice_and_one_charge(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    sub = subscribe(user, "patient")
    target, seen = price_id("professional"), changes.preview(user.id, sub.id, price_id("professional"))
    results = run_in_threads(
        app, 20, lambda: changes.change_plan(user.id, sub.id, target, seen.charge.total_cents)
    )
    assert sum(1 for r in results if isinstance(r, changes.Quote)) == 1, results
    assert all(isinstance(r, PlanChangeNotAllowed) for r in results if not isinstance(r, changes.Quote))
    assert len(invoices_for(user.id)) == 2
    assert [i.amount for i in intents_of(app, user)] == [900, 2000]


@pytest.mark.parametrize(
    ("plan", "interval", "error", "message"),
    [
        ("professional", Interval.MONTH, PlanChangeNotAllowed, "already on the Professional plan"),
        ("retired", Interval.MONTH, PlanNotAvailable, "not available"),
    ],
)
def test_a_change_to_the_current_plan_or_a_retired_price_is_refused_and_changes_nothing(
    app: Flask,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    plan: str,
    interval: Interval,
    error: type[Exception],
    message: str,
) -> None:
    user = make_customer()
    sub = subscribe(user, "professional")
    target = price_id("professional" if plan != "retired" else "md", interval)
    if plan == "retired":
        db.session.execute(update(Price).where(Price.id == target).values(active=False))
        db.session.commit()
    with pytest.raises(error, match=message):
        changes.change_plan(user.id, sub.id, target, None)
    db.session.expire_all()
    assert sub.price.plan.code == "professional" and sub.scheduled_price_id is None
    assert len(invoices_for(user.id)) == 1


def test_another_customers_subscription_is_not_found(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    owner, other = make_customer(), make_customer()
    sub = subscribe(owner, "patient")
    with pytest.raises(LookupError):
        changes.change_plan(other.id, sub.id, price_id("md"), None)
    db.session.expire_all()
    assert sub.price.plan.code == "patient"


def test_a_declined_upgrade_keeps_the_new_plan_in_dunning_and_says_so(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    """As a renewal: the change is made, its invoice stays open and dunning collects it (a new card
    pays it); the customer is told the charge was declined."""
    user = make_customer()
    sub = subscribe(user, "patient")
    switch_card(app, user, DECLINED_AT_CHARGE)
    preview = changes.preview(user.id, sub.id, price_id("md"))

    done = changes.change_plan(user.id, sub.id, price_id("md"), preview.charge.total_cents)

    assert done.payment_status == PaymentStatus.FAILED
    db.session.expire_all()
    assert sub.price.plan.code == "md" and sub.is_past_due
    upgrade = max(invoices_for(user.id), key=lambda i: i.id)
    assert upgrade.status == InvoiceStatus.OPEN and upgrade.next_attempt_at is not None
    assert [i.status for i in intents_of(app, user)] == ["succeeded", "requires_payment_method"]
