"""No charge ever happens twice: concurrent requests and workers, crashes and a Stripe outage."""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from flask import Flask
from sqlalchemy import func, select

from dicomportal import create_app, jobs
from dicomportal.billing import gateway, subscriptions
from dicomportal.billing import jobs as billing_jobs
from dicomportal.billing.errors import BillingError
from dicomportal.billing.invoicing import invoices_for
from dicomportal.devtools.stripe_server import LocalStripe
from dicomportal.extensions import db
from dicomportal.models import InvoiceStatus, Payment, PaymentStatus, Subscription, SubscriptionStatus, User
from tests.helpers.stripe import confirm_card_setup, intents_of, price_id

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


class SimulatedCrash(BaseException):
    """The process dies here: nothing catches a BaseException that isn't an Exception."""


def run_in_threads(app: Flask, count: int, work: Callable[[], Any]) -> list[Any]:
    """Run ``work`` in ``count`` threads that start together, each with its own app context."""
    barrier = threading.Barrier(count)
    results: list[Any] = [None] * count

    def worker(index: int) -> None:
        with app.app_context():
            barrier.wait()
            try:
                results[index] = work()
            except BillingError as exc:
                results[index] = exc
            finally:
                db.session.remove()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    return results


def test_twenty_concurrent_subscribe_requests_make_one_subscription_and_one_charge(
    app: Flask, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    setup_id = confirm_card_setup(app, user, "4242424242424242")
    price = price_id("md")

    results = run_in_threads(app, 20, lambda: subscriptions.subscribe(user.id, price, setup_id).id)

    created = [r for r in results if isinstance(r, int)]
    assert len(set(created)) == 1, results
    assert db.session.scalar(select(func.count()).select_from(Subscription)) == 1
    assert len(invoices_for(user.id)) == 1
    assert [(i.status, i.amount) for i in intents_of(app, user)] == [("succeeded", 7900)]


def test_two_workers_at_once_renew_each_subscription_once(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    with time_machine.travel(START, tick=False):
        customers = [make_customer() for _ in range(4)]
        for customer in customers:
            subscribe(customer, "patient")

    with time_machine.travel(START + relativedelta(months=1) + timedelta(hours=1), tick=False):
        run_in_threads(app, 2, jobs.run_once)

    for customer in customers:
        invoices = invoices_for(customer.id)
        assert len(invoices) == 2 and all(i.status == InvoiceStatus.PAID for i in invoices)
        assert [i.status for i in intents_of(app, customer)] == ["succeeded", "succeeded"]
    numbers = sorted(i.number for c in customers for i in invoices_for(c.id))
    assert numbers == [f"DP-2026-{n:06d}" for n in range(1, 9)]


@pytest.mark.parametrize("crash_point", ["before_create", "after_create", "before_confirm"])
def test_a_crash_mid_charge_is_finished_by_reconcile_with_exactly_one_charge(
    app: Flask,
    make_customer: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
    crash_point: str,
) -> None:
    user = make_customer()
    setup_id = confirm_card_setup(app, user, "4242424242424242")
    real_create = gateway.create_payment_intent

    def create_then_maybe_crash(**kwargs: Any) -> gateway.IntentInfo:
        if crash_point == "before_create":
            raise SimulatedCrash
        intent = real_create(**kwargs)
        if crash_point == "after_create":
            raise SimulatedCrash  # Stripe has the intent; we never stored its id
        return intent

    def crash(*args: Any, **kwargs: Any) -> None:
        raise SimulatedCrash

    monkeypatch.setattr(gateway, "create_payment_intent", create_then_maybe_crash)
    if crash_point == "before_confirm":
        monkeypatch.setattr(gateway, "confirm_payment_intent", crash)
    with time_machine.travel(START, tick=False), pytest.raises(SimulatedCrash):
        subscriptions.subscribe(user.id, price_id("professional"), setup_id)
    db.session.rollback()
    monkeypatch.undo()

    (payment,) = db.session.scalars(select(Payment)).all()
    assert payment.status == PaymentStatus.PENDING
    with time_machine.travel(START + timedelta(minutes=5), tick=False):
        jobs.run_once()
        jobs.run_once()

    db.session.refresh(payment)
    assert payment.status == PaymentStatus.SUCCEEDED
    succeeded = [i for i in intents_of(app, user) if i.status == "succeeded"]
    assert len(succeeded) == 1 and succeeded[0].id == payment.stripe_payment_intent_id
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
    assert invoices_for(user.id)[0].amount_paid_cents == 2900


@pytest.fixture
def own_stripe(app_config: dict[str, Any], instance_dir: Any) -> Iterator[tuple[Flask, LocalStripe]]:
    """An app with a localstripe of its own, which this test may freeze (SIGSTOP) and thaw."""
    with LocalStripe() as server:
        config = {**app_config, "STRIPE_API_BASE": server.api_base, "STRIPE_TIMEOUT": 1.5}
        app = create_app(config, instance_path=str(instance_dir))
        with app.app_context():
            yield app, server
            db.session.remove()
            db.engine.dispose()
        assert server.process is not None
        os.kill(server.process.pid, signal.SIGCONT)


def test_stripe_outage_mid_renewal_recovers_with_one_charge_and_nothing_pending(
    app: Flask, own_stripe: tuple[Flask, LocalStripe], make_customer: Callable[..., User]
) -> None:
    other_app, server = own_stripe
    assert server.process is not None
    with time_machine.travel(START, tick=False):
        user = make_customer()
        setup_id = confirm_card_setup(other_app, user, "4242424242424242")
        subscriptions.subscribe(user.id, price_id("professional"), setup_id)

    renewal_at = START + relativedelta(months=1) + timedelta(hours=1)
    os.kill(server.process.pid, signal.SIGSTOP)  # Stripe stops answering mid-renewal
    try:
        with time_machine.travel(renewal_at, tick=False):
            jobs.run_once()
        renewal = max(invoices_for(user.id), key=lambda i: i.id)
        assert renewal.status == InvoiceStatus.OPEN
        assert [p.status for p in renewal.payments] == [PaymentStatus.PENDING]
    finally:
        os.kill(server.process.pid, signal.SIGCONT)

    with time_machine.travel(renewal_at + timedelta(minutes=10), tick=False):
        jobs.run_once()

    db.session.refresh(renewal)
    assert renewal.status == InvoiceStatus.PAID
    assert db.session.scalar(select(func.count()).where(Payment.status == PaymentStatus.PENDING)) == 0
    succeeded = [i for i in intents_of(other_app, user) if i.status == "succeeded"]
    assert len(succeeded) == 2  # the first invoice and the renewal, once each
    assert not billing_jobs.reconcile_payments()["settled"]
