"""Automatic renewal and dunning, with time moved by time-machine and the jobs run as the worker would."""

from __future__ import annotations

import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from flask import Flask

from dicomportal import jobs
from dicomportal.billing import cards, subscriptions
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.models import InvoiceStatus, Subscription, SubscriptionStatus, User
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import DECLINED_AT_CHARGE, GOOD_CARD, confirm_card_setup, intents_of

START = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def switch_card(app: Flask, user: User, number: str) -> None:
    setup = cards.verified_setup(user, confirm_card_setup(app, user, number))
    cards.save_default_card(user, setup.payment_method or "")
    db.session.commit()


def tick(at: datetime) -> dict[str, int]:
    with time_machine.travel(at, tick=False):
        return jobs.run_once()


def test_twelve_monthly_renewals_are_paid_once_each_and_numbered_without_gaps(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user, "professional")

    for month in range(1, 13):
        tick(START + relativedelta(months=month) + timedelta(hours=1))

    invoices = sorted(invoices_for(user.id), key=lambda i: i.id)
    assert len(invoices) == 13  # the first invoice and twelve renewals
    assert all(i.status == InvoiceStatus.PAID and i.amount_paid_cents == 2900 for i in invoices)
    numbers = [i.number for i in invoices]
    assert numbers[:12] == [f"DP-2026-{n:06d}" for n in range(1, 13)]
    assert numbers[12] == "DP-2027-000001"  # a new series each year, again from 1
    periods = [(i.period_start, i.period_end) for i in invoices]
    assert all(prev[1] == nxt[0] for prev, nxt in itertools.pairwise(periods))  # back to back
    assert periods[-1][1] == START + relativedelta(months=13)  # the billing day is kept
    intents = intents_of(app, user)
    assert len(intents) == 13 and {(i.status, i.amount) for i in intents} == {("succeeded", 2900)}
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE


def test_a_tick_before_the_period_ends_charges_nothing(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user)
    tick(START + timedelta(days=30))  # the period ends on 15 February
    tick(START + timedelta(days=30))
    assert len(invoices_for(user.id)) == 1 and len(intents_of(app, user)) == 1


@pytest.fixture
def card_fails_at_renewal(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> User:
    """A customer subscribed on START whose card on file is then one that is declined when charged."""
    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user)
        switch_card(app, user, DECLINED_AT_CHARGE)
    return user


def test_failed_renewal_goes_past_due_and_a_new_card_pays_it(
    app: Flask, card_fails_at_renewal: User, smtp: SmtpSink
) -> None:
    user = card_fails_at_renewal

    renewal_at = START + relativedelta(months=1) + timedelta(hours=1)
    tick(renewal_at)

    subscription = subscriptions.live_subscription(user.id)
    assert subscription.status == SubscriptionStatus.PAST_DUE
    invoice = invoices_for(user.id)[0]
    assert invoice.status == InvoiceStatus.OPEN and invoice.attempt_count == 1
    assert invoice.next_attempt_at == invoice.finalized_at + timedelta(days=1)
    mail = smtp.last_to(user.email)
    assert "failed" in mail["Subject"]
    assert "http://localhost/billing/card" in SmtpSink.text(mail)

    with time_machine.travel(renewal_at + timedelta(hours=2), tick=False):
        switch_card(app, user, GOOD_CARD)
        subscriptions.pay_open_invoices(user.id)

    db.session.refresh(invoice)
    assert invoice.status == InvoiceStatus.PAID and invoice.next_attempt_at is None
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
    tick(renewal_at + timedelta(days=1, hours=1))  # the scheduled retry finds nothing to do
    assert [i.status for i in intents_of(app, user)] == ["succeeded", "requires_payment_method", "succeeded"]


def test_when_every_retry_fails_the_subscription_ends(
    app: Flask, card_fails_at_renewal: User, smtp: SmtpSink
) -> None:
    user = card_fails_at_renewal
    renewal_at = START + relativedelta(months=1) + timedelta(minutes=5)

    tick(renewal_at)
    for days in (1, 3, 7):  # the default dunning schedule
        assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.PAST_DUE
        tick(renewal_at + timedelta(days=days))

    assert subscriptions.live_subscription(user.id) is None
    ended = subscriptions.latest_subscription(user.id)
    assert ended.status == SubscriptionStatus.ENDED and ended.ended_reason == "unpaid"
    assert ended.restore_deadline == ended.ended_at + timedelta(days=30)
    assert invoices_for(user.id)[0].status == InvoiceStatus.UNCOLLECTIBLE
    assert [str(m["Subject"]) for m in smtp.to(user.email)] == [
        "Welcome to DICOM Portal Professional",
        *["Your payment for invoice DP-2026-000002 failed"] * 3,  # the renewal and two retries
        "Your DICOM Portal subscription has ended",  # the last retry failed: no fourth notice
    ]
    statuses = [i.status for i in intents_of(app, user)]
    assert statuses == ["succeeded"] + ["requires_payment_method"] * 4
    tick(renewal_at + timedelta(days=40))  # nothing more is ever charged
    assert len(intents_of(app, user)) == 5
