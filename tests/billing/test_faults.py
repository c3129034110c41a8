"""Billing keeps going under faults: a crash at any step of a renewal, a customer Stripe refuses
for good, an unexpected error on one item, and several workers at once."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from flask import Flask
from sqlalchemy import func, select

from dicomportal import jobs
from dicomportal.billing import changes, collection, gateway, subscriptions
from dicomportal.billing import jobs as billing_jobs
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.models import (
    Invoice,
    InvoiceStatus,
    JobItemFailure,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    User,
)
from tests.billing.test_renewals import switch_card
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import DECLINED_AT_CHARGE, GOOD_CARD, intents_of, price_id, stripe_client

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
RENEWAL = START + relativedelta(months=1) + timedelta(hours=1)


class SimulatedCrash(BaseException):
    """The worker process dies here: nothing catches a BaseException that isn't an Exception."""


def tick(at: datetime) -> dict[str, Any]:
    with time_machine.travel(at, tick=False):
        return jobs.run_once()


def crash_at(monkeypatch: pytest.MonkeyPatch, step: str) -> None:
    """Make the next renewal die at ``step``."""

    def die(*_args: Any, **_kwargs: Any) -> Any:
        raise SimulatedCrash(step)

    def after(real: Callable[..., Any]) -> Callable[..., Any]:
        def run_then_die(*args: Any, **kwargs: Any) -> Any:
            real(*args, **kwargs)
            raise SimulatedCrash(step)

        return run_then_die

    if step == "after_the_invoice":  # invoice finalized, its payment attempt not yet added
        monkeypatch.setattr(collection, "first_attempt", die)
    elif step == "after_the_payment_row":  # invoice + pending payment committed, Stripe not called
        monkeypatch.setattr(gateway, "create_payment_intent", die)
    elif step == "after_the_intent_is_created":  # Stripe has the intent; its id never stored
        monkeypatch.setattr(gateway, "create_payment_intent", after(gateway.create_payment_intent))
    elif step == "before_the_intent_is_confirmed":
        monkeypatch.setattr(gateway, "confirm_payment_intent", die)
    elif step == "after_the_intent_is_confirmed":  # charged at Stripe, outcome never recorded
        monkeypatch.setattr(gateway, "confirm_payment_intent", after(gateway.confirm_payment_intent))
    else:
        raise AssertionError(step)


def has_a_way_to_be_collected(invoice: Invoice) -> bool:
    in_flight = any(
        p.status in (PaymentStatus.PENDING, PaymentStatus.REQUIRES_ACTION) for p in invoice.payments
    )
    return in_flight or invoice.next_attempt_at is not None


STEPS = [
    "after_the_invoice",
    "after_the_payment_row",
    "after_the_intent_is_created",
    "before_the_intent_is_confirmed",
    "after_the_intent_is_confirmed",
]


@pytest.mark.parametrize("card", [GOOD_CARD, DECLINED_AT_CHARGE])
@pytest.mark.parametrize("step", STEPS)
def test_a_worker_killed_at_any_step_of_a_renewal_leaves_every_invoice_paid_or_in_dunning(
    app: Flask,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    monkeypatch: pytest.MonkeyPatch,
    step: str,
    card: str,
) -> None:
    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user, "professional")
        if card != GOOD_CARD:
            switch_card(app, user, card)  # renewals are charged to a card that will be declined

    crash_at(monkeypatch, step)
    with pytest.raises(SimulatedCrash):
        tick(RENEWAL)
    db.session.rollback()  # the process died: its open transaction is gone
    monkeypatch.undo()

    # The next passes: after reconcile's threshold, and after the dead worker's claim lapses.
    for later in (timedelta(minutes=5), billing_jobs.CLAIM_FOR + timedelta(minutes=1)):
        tick(RENEWAL + later)

    invoices = sorted(invoices_for(user.id), key=lambda i: i.id)
    assert len(invoices) == 2  # the first invoice and exactly one renewal
    renewal = invoices[1]
    subscription = subscriptions.live_subscription(user.id)
    if card == GOOD_CARD:
        assert renewal.status == InvoiceStatus.PAID
        assert subscription.status == SubscriptionStatus.ACTIVE
    else:
        assert renewal.status == InvoiceStatus.OPEN and has_a_way_to_be_collected(renewal)
        assert renewal.next_attempt_at is not None  # dunning has a retry on the calendar
        assert subscription.status == SubscriptionStatus.PAST_DUE
    succeeded = [i for i in intents_of(app, user) if i.status == "succeeded"]
    paid = [i for i in invoices if i.status == InvoiceStatus.PAID]
    assert sorted(int(i.metadata["invoice_id"]) for i in succeeded) == sorted(i.id for i in paid)
    assert db.session.scalar(select(func.count()).where(Payment.status == PaymentStatus.PENDING)) == 0


def test_an_open_invoice_left_with_no_way_to_be_collected_is_found_and_charged(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    """The sweep is the net under anything that strands an invoice (here: made by hand)."""
    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user, "professional")
    with time_machine.travel(RENEWAL, tick=False):
        renewal = subscriptions.renew(subscriptions.live_subscription(user.id).id)
    # Strand it: drop the attempt the renewal committed with the invoice, as old code could leave it.
    db.session.execute(Payment.__table__.delete().where(Payment.id == renewal.payment_id))
    db.session.commit()

    results = tick(RENEWAL + timedelta(minutes=5))

    assert results["schedule_stranded_invoices"]["scheduled"] == 1
    assert results["retry_failed_payments"]["charged"] == 1
    invoice = db.session.get_one(Invoice, renewal.invoice_id)
    assert invoice.status == InvoiceStatus.PAID
    assert tick(RENEWAL + timedelta(minutes=10))["schedule_stranded_invoices"]["scheduled"] == 0


def test_one_customer_stripe_refuses_does_not_stop_nineteen_others_in_the_same_pass(
    app: Flask,
    runner: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    with time_machine.travel(START, tick=False):
        customers = [make_customer() for _ in range(20)]
        for customer in customers:
            subscribe(customer, "patient")
    gone = customers[6]
    stripe_client(app).v1.customers.delete(gone.stripe_customer_id)  # deleted at Stripe, not by us

    result = runner.invoke(args=["tick", "--now", RENEWAL.isoformat()])

    assert result.exit_code == 0, result.output
    assert "renew_due_subscriptions: charged=19 declined=1 renewed=20" in result.output
    for customer in customers:
        renewal = max(invoices_for(customer.id), key=lambda i: i.id)
        if customer is gone:
            continue
        assert renewal.status == InvoiceStatus.PAID and renewal.period_start == START + relativedelta(
            months=1
        )
    renewal = max(invoices_for(gone.id), key=lambda i: i.id)
    (attempt,) = renewal.payments
    assert attempt.status == PaymentStatus.FAILED and attempt.failure_code
    assert renewal.status == InvoiceStatus.OPEN and renewal.next_attempt_at is not None
    assert subscriptions.live_subscription(gone.id).status == SubscriptionStatus.PAST_DUE
    assert "failed" in smtp.last_to(gone.email)["Subject"]


def test_reconcile_settles_every_pending_payment_even_when_the_oldest_cannot_be(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    with time_machine.travel(START, tick=False):
        first, second = make_customer(), make_customer()
        subscribe(first, "patient")
        subscribe(second, "patient")
    with time_machine.travel(RENEWAL, tick=False):  # renew without charging: both left pending
        for customer in (first, second):
            subscriptions.renew(subscriptions.live_subscription(customer.id).id)
    stripe_client(app).v1.customers.delete(first.stripe_customer_id)

    counts = tick(RENEWAL + timedelta(minutes=5))["reconcile_payments"]

    assert counts["settled"] == 2
    statuses = {
        customer.id: max(invoices_for(customer.id), key=lambda i: i.id).payments[0].status
        for customer in (first, second)
    }
    assert statuses == {first.id: PaymentStatus.FAILED, second.id: PaymentStatus.SUCCEEDED}


def test_an_unexpected_error_on_one_subscription_is_logged_retried_with_backoff_and_stops_nothing(
    app: Flask,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    with time_machine.travel(START, tick=False):
        broken, fine = make_customer(), make_customer()
        subscribe(broken, "patient")
        subscribe(fine, "patient")
    broken_id = subscriptions.live_subscription(broken.id).id
    real_renew = subscriptions.renew

    def renew(subscription_id: int) -> subscriptions.Renewal:
        if subscription_id == broken_id:
            raise RuntimeError("a bug that only this customer's data triggers")
        return real_renew(subscription_id)

    monkeypatch.setattr(subscriptions, "renew", renew)
    counts = tick(RENEWAL)["renew_due_subscriptions"]

    assert counts["renewed"] == 1 and counts["charged"] == 1 and counts["errors"] == 1
    assert f"subscription {broken_id} failed" in caplog.text
    failure = db.session.get_one(JobItemFailure, ("renew_due_subscriptions", broken_id))
    assert failure.failures == 1 and "only this customer" in failure.last_error
    waiting = tick(RENEWAL + timedelta(seconds=30))["renew_due_subscriptions"]
    assert not waiting["renewed"] and not waiting["errors"]  # left alone until its retry time

    monkeypatch.undo()  # the bug is fixed; after the backoff the item is tried again
    counts = tick(RENEWAL + timedelta(minutes=2))["renew_due_subscriptions"]
    assert counts["renewed"] == 1 and counts["charged"] == 1
    assert db.session.get(JobItemFailure, ("renew_due_subscriptions", broken_id)) is None
    assert len(invoices_for(broken.id)) == 2


def test_tick_prints_counts_per_job_never_a_bare_minus_one(
    app: Flask, runner: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    def broken_query() -> Any:
        raise RuntimeError("database went away")

    renewals = jobs.Registered(20, "renew_due_subscriptions", broken_query)
    monkeypatch.setitem(jobs._REGISTRY, "renew_due_subscriptions", renewals)
    result = runner.invoke(args=["tick"])
    assert result.exit_code == 0
    assert "renew_due_subscriptions: job_failed=1" in result.output
    assert "=-1" not in result.output
    assert "deliver_mail: nothing to do" in result.output


def test_three_tick_processes_at_once_renew_each_subscription_once_with_gapless_numbers(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    with time_machine.travel(START, tick=False):
        customers = [make_customer() for _ in range(6)]
        for customer in customers:
            subscribe(customer, "patient")
    config = app.config
    env = {
        **os.environ,
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "SECRET_KEY": "test-secret-key-not-for-production",
        "STRIPE_API_BASE": config["STRIPE_API_BASE"],
        "STRIPE_SECRET_KEY": config["STRIPE_SECRET_KEY"],
        "STRIPE_WEBHOOK_SECRET": config["STRIPE_WEBHOOK_SECRET"],
        "MAIL_BACKEND": "outbox",
    }
    command = [sys.executable, "-m", "dicomportal.cli", "tick", "--now", RENEWAL.isoformat()]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for _ in range(3)
    ]
    outputs = [worker.communicate(timeout=300)[0] for worker in workers]

    assert [worker.returncode for worker in workers] == [0, 0, 0], outputs
    for output in outputs:
        assert "Traceback" not in output and "errors=" not in output and "job_failed" not in output, output
    renewed = [_count(output, "renew_due_subscriptions", "renewed") for output in outputs]
    charged = [_count(output, "renew_due_subscriptions", "charged") for output in outputs]
    assert sum(renewed) == 6 and sum(charged) == 6, outputs
    db.session.expire_all()
    numbers = sorted(i.number for c in customers for i in invoices_for(c.id))
    assert numbers == [f"DP-2026-{n:06d}" for n in range(1, 13)]
    for customer in customers:
        assert [i.status for i in intents_of(app, customer)] == ["succeeded", "succeeded"]


def _count(output: str, job: str, outcome: str) -> int:
    """``renewed=3`` from the line ``  renew_due_subscriptions: charged=3 renewed=3`` of a tick."""
    (line,) = [line for line in output.splitlines() if line.strip().startswith(f"{job}:")]
    counts = dict(part.split("=") for part in line.split(":", 1)[1].split() if "=" in part)
    return int(counts.get(outcome, 0))


@pytest.mark.parametrize("step", STEPS)
def test_a_crash_at_any_step_of_an_upgrade_leaves_it_charged_once_by_the_next_passes(
    app: Flask,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    monkeypatch: pytest.MonkeyPatch,
    step: str,
) -> None:
    """A confirmed upgrade takes the same charging path as a renewal: killed at any step, the change
    is either not made at all or made with its invoice paid exactly once by the worker."""
    with time_machine.travel(START, tick=False):
        user = make_customer()
        sub = subscribe(user, "patient")
        target = price_id("md")
        seen = changes.preview(user.id, sub.id, target).charge.total_cents
        crash_at(monkeypatch, step)
        with pytest.raises(SimulatedCrash):
            changes.change_plan(user.id, sub.id, target, seen)
        db.session.rollback()
        monkeypatch.undo()

    for later in (timedelta(minutes=5), billing_jobs.CLAIM_FOR + timedelta(minutes=1)):
        tick(START + later)

    invoices = sorted(invoices_for(user.id), key=lambda i: i.id)
    upgraded = subscriptions.live_subscription(user.id)
    assert upgraded is not None
    if step == "after_the_invoice":  # died before its transaction committed: nothing changed
        assert len(invoices) == 1 and upgraded.price.plan.code == "patient"
        return
    assert len(invoices) == 2 and upgraded.price.plan.code == "md"
    assert invoices[1].status == InvoiceStatus.PAID and invoices[1].total_cents == seen
    succeeded = [i for i in intents_of(app, user) if i.status == "succeeded"]
    assert sorted(int(i.metadata["invoice_id"]) for i in succeeded) == [invoices[0].id, invoices[1].id]
    assert db.session.scalar(select(func.count()).where(Payment.status == PaymentStatus.PENDING)) == 0
