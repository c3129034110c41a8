"""Managing a subscription over time, driven by `dicomportal tick --now` like cron would: cancel,
end, restore or purge; pause and auto-resume; a scheduled downgrade; annual to monthly."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

import pytest
from dateutil.relativedelta import relativedelta
from flask import Flask
from sqlalchemy import select

from dicomportal import clock
from dicomportal.billing import cancellation, changes, pause, retention
from dicomportal.billing.errors import PlanChangeNotAllowed
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.models import AuditLog, Interval, InvoiceStatus, Subscription, SubscriptionStatus, User
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import intents_of, price_id


@pytest.fixture
def purged() -> Iterator[list[int]]:
    """A purger standing in for the storage domain's: records whose data it deleted."""
    calls: list[int] = []
    saved = dict(retention._PURGERS)
    retention.register_purger("studies", lambda user_id: calls.append(user_id) or {"studies": 2})
    yield calls
    retention._PURGERS.clear()
    retention._PURGERS.update(saved)


def tick(runner: Any, at: datetime) -> str:
    result = runner.invoke(args=["tick", "--now", at.isoformat()])
    assert result.exit_code == 0, result.output
    return str(result.output)


def fresh(subscription_id: int) -> Subscription:
    db.session.rollback()
    db.session.expire_all()
    return db.session.get_one(Subscription, subscription_id)


def charges(app: Flask, user: User) -> list[tuple[str, int]]:
    return [(i.status, i.amount) for i in intents_of(app, user)]


def test_cancel_then_end_then_restore_within_the_window_is_active_with_data_intact(
    app: Flask,
    runner: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    purged: list[int],
    smtp: SmtpSink,
) -> None:
    user = make_customer()
    sub = subscribe(user, "patient")
    cancellation.cancel_subscription(user.id, sub.id, "too_expensive", "Back in spring")
    assert fresh(sub.id).ends_at_period_end and fresh(sub.id).cancel_reason == "too_expensive; Back in spring"

    output = tick(runner, sub.current_period_end + timedelta(minutes=5))
    assert "renew_due_subscriptions: ended=1" in output
    ended = fresh(sub.id)
    assert ended.has_ended and not ended.grants_access
    assert ended.restore_deadline is not None
    assert ended.restore_deadline - ended.current_period_end >= timedelta(days=30)

    clock.travel_to(sub.current_period_end + timedelta(days=20))
    not_staff = make_customer(email="someone@example.com")
    refused = runner.invoke(args=["restore", user.email, "--by", not_staff.email])
    assert refused.exit_code != 0 and "is not a support or admin account" in refused.output
    assert fresh(sub.id).has_ended  # nothing restored
    result = runner.invoke(args=["restore", user.email])
    assert result.exit_code == 0, result.output
    restored = fresh(sub.id)
    assert restored.is_active and restored.price.plan.code == "patient"
    assert restored.current_period_start.date() == clock.now().date()
    assert charges(app, user) == [("succeeded", 900), ("succeeded", 900)]
    assert purged == []  # data intact
    tick(runner, clock.now() + timedelta(days=40))
    assert purged == []  # restored: the old window no longer applies
    subjects = [str(m["Subject"]) for m in smtp.to(user.email)]
    assert "Your DICOM Portal subscription is cancelled" in subjects
    assert "Your DICOM Portal subscription has ended" in subjects
    assert "Your DICOM Portal subscription is restored" in subjects
    actions = db.session.scalars(select(AuditLog.action).where(AuditLog.subject_user_id == user.id)).all()
    assert "subscription.restored" in actions


def test_after_the_window_the_purge_runs_once_is_recorded_and_restore_is_refused(
    app: Flask,
    runner: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    purged: list[int],
) -> None:
    user = make_customer()
    sub = subscribe(user, "patient")
    cancellation.cancel_subscription(user.id, sub.id, None, None)
    tick(runner, sub.current_period_end + timedelta(minutes=5))
    after_window = sub.current_period_end + timedelta(days=31)
    assert "purge_after_restore_window: purged=1" in tick(runner, after_window)
    tick(runner, after_window + timedelta(days=1))
    assert purged == [user.id]
    record = db.session.scalar(select(AuditLog).where(AuditLog.action == "customer_data.purged"))
    assert record is not None and record.details == {"deleted": {"studies": {"studies": 2}}}

    result = runner.invoke(args=["restore", user.email])
    assert result.exit_code != 0 and "restore window has passed" in result.output
    assert fresh(sub.id).has_ended and len(invoices_for(user.id)) == 1

    again = subscribe(user, "md")  # resubscribing after the purge is the normal subscribe flow
    assert again.is_active and again.id != sub.id
    tick(runner, after_window + timedelta(days=2))
    assert purged == [user.id]  # the new subscription's customer is not purged again


def test_pause_charges_nothing_for_twelve_weeks_then_resumes_with_one_charge(
    app: Flask,
    runner: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    user = make_customer()
    sub = subscribe(user, "professional")
    pause.pause_subscription(user.id, sub.id)
    with pytest.raises(PlanChangeNotAllowed, match="already paused"):
        pause.pause_subscription(user.id, sub.id)
    start = sub.current_period_end
    assert "paused=1" in tick(runner, start + timedelta(minutes=5))
    assert fresh(sub.id).is_paused
    for week in range(1, 12):
        tick(runner, start + timedelta(weeks=week))
    assert charges(app, user) == [("succeeded", 2900)]
    assert "Your DICOM Portal pause ends in 7 days" in [str(m["Subject"]) for m in smtp.to(user.email)]

    assert "resumed=1" in tick(runner, start + timedelta(weeks=12, minutes=5))
    tick(runner, start + timedelta(weeks=12, hours=1))
    resumed = fresh(sub.id)
    assert resumed.is_active and resumed.current_period_end > start + timedelta(weeks=16)
    assert charges(app, user) == [("succeeded", 2900), ("succeeded", 2900)]


def test_a_scheduled_downgrade_applies_at_the_period_end_at_the_lower_price(
    app: Flask, runner: Any, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    sub = subscribe(user, "md")
    quote = changes.change_plan(user.id, sub.id, price_id("patient"), None)
    assert not quote.effective_now and quote.effective_on == sub.current_period_end
    assert fresh(sub.id).price.plan.code == "md" and len(invoices_for(user.id)) == 1

    tick(runner, sub.current_period_end + timedelta(minutes=5))
    after = fresh(sub.id)
    assert after.price.plan.code == "patient" and after.scheduled_price_id is None
    assert charges(app, user) == [("succeeded", 7900), ("succeeded", 900)]


def test_annual_to_monthly_switches_at_the_period_end(
    app: Flask, runner: Any, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    sub = subscribe(user, "professional", Interval.YEAR)
    year_end = sub.current_period_end
    changes.change_plan(user.id, sub.id, price_id("professional", Interval.MONTH), None)
    tick(runner, year_end - timedelta(days=1))
    assert fresh(sub.id).price.interval == Interval.YEAR

    tick(runner, year_end + timedelta(minutes=5))
    after = fresh(sub.id)
    assert after.price.interval == Interval.MONTH
    assert after.current_period_end == year_end + relativedelta(months=1)
    assert charges(app, user) == [("succeeded", 24000), ("succeeded", 2900)]
    assert all(i.status == InvoiceStatus.PAID for i in invoices_for(user.id))


def test_undo_after_the_end_is_refused_and_changes_nothing(
    app: Flask, runner: Any, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    sub = subscribe(user, "patient")
    cancellation.cancel_subscription(user.id, sub.id, None, None)
    with pytest.raises(PlanChangeNotAllowed, match="already cancelled"):
        cancellation.cancel_subscription(user.id, sub.id, None, None)
    tick(runner, sub.current_period_end + timedelta(minutes=5))
    with pytest.raises(PlanChangeNotAllowed, match="already ended"):
        cancellation.undo_cancellation(user.id, sub.id)
    assert fresh(sub.id).status == SubscriptionStatus.ENDED
