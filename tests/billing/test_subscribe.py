"""Subscribing: the first invoice is numbered, charged once, and the subscription becomes active."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from flask import Flask

from dicomportal.billing import collection, entitlements, subscriptions
from dicomportal.billing.errors import AlreadySubscribed
from dicomportal.billing.invoicing import invoices_for
from dicomportal.models import InvoiceStatus, PaymentStatus, Subscription, SubscriptionStatus, User
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import DECLINED_AT_CHARGE, THREE_D_SECURE, authenticate_payment, intents_of

START = datetime(2026, 5, 4, 8, 0, tzinfo=UTC)


def test_subscribing_charges_the_first_invoice_once_and_activates(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription], smtp: SmtpSink
) -> None:
    from dicomportal.mail import deliver_pending

    user = make_customer()
    subscription = subscribe(user, "professional")
    deliver_pending()

    assert subscription.status == SubscriptionStatus.ACTIVE
    (invoice,) = invoices_for(user.id)
    assert invoice.status == InvoiceStatus.PAID
    assert invoice.number and invoice.number.endswith("-000001")
    assert invoice.total_cents == invoice.amount_paid_cents == 2900
    intents = intents_of(app, user)
    assert [(i.status, i.amount) for i in intents] == [("succeeded", 2900)]
    assert "Welcome to DICOM Portal Professional" in smtp.last_to(user.email)["Subject"]
    assert entitlements.entitlements_for(user.id).can_upload


def test_a_second_subscription_is_refused(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    subscribe(user)
    with pytest.raises(AlreadySubscribed):
        subscribe(user, "md")
    assert len(intents_of(app, user)) == 1


def test_a_card_declined_at_the_first_charge_gives_no_access(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    subscription = subscribe(user, card=DECLINED_AT_CHARGE)

    assert subscription.status == SubscriptionStatus.ENDED
    (invoice,) = invoices_for(user.id)
    assert invoice.status == InvoiceStatus.VOID and invoice.amount_paid_cents == 0
    assert not entitlements.entitlements_for(user.id).can_view
    assert subscriptions.live_subscription(user.id) is None  # free to try again with another card


def test_three_d_secure_payment_activates_only_after_authentication(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    subscription = subscribe(user, card=THREE_D_SECURE)
    assert subscription.status == SubscriptionStatus.INCOMPLETE
    assert not entitlements.entitlements_for(user.id).can_view
    (invoice,) = invoices_for(user.id)
    (payment,) = invoice.payments
    assert payment.status == PaymentStatus.REQUIRES_ACTION

    authenticate_payment(app, payment.stripe_payment_intent_id, payment.client_secret, success=True)
    subscriptions.complete_authentication(user.id, payment.id)

    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
    assert invoice.status == InvoiceStatus.PAID


def test_failed_three_d_secure_leaves_no_access(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    subscribe(user, card=THREE_D_SECURE)
    (payment,) = invoices_for(user.id)[0].payments

    authenticate_payment(app, payment.stripe_payment_intent_id, payment.client_secret, success=False)
    result = subscriptions.complete_authentication(user.id, payment.id)

    assert result.status == PaymentStatus.FAILED
    assert subscriptions.live_subscription(user.id) is None
    assert not entitlements.entitlements_for(user.id).can_view
    assert collection.default_card(user.id) is not None  # the card stays saved for another try


def test_an_abandoned_three_d_secure_subscription_expires_after_a_day(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    from dicomportal import jobs

    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user, card=THREE_D_SECURE)
    with time_machine.travel(START + timedelta(hours=22), tick=False):
        jobs.run_once()
        assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.INCOMPLETE

    with time_machine.travel(START + timedelta(hours=24), tick=False):
        jobs.run_once()

    assert subscriptions.live_subscription(user.id) is None  # free to choose any plan again
    ended = subscriptions.latest_subscription(user.id)
    assert ended.ended_reason == "incomplete_expired"
    assert invoices_for(user.id)[0].status == InvoiceStatus.VOID
    assert [i.status for i in intents_of(app, user)] == ["canceled"]  # it can never be completed now


def test_an_authentication_completed_just_before_expiry_is_kept(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    from dicomportal import jobs

    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user, card=THREE_D_SECURE)
    (payment,) = invoices_for(user.id)[0].payments
    authenticate_payment(app, payment.stripe_payment_intent_id, payment.client_secret, success=True)

    with time_machine.travel(START + timedelta(hours=24), tick=False):
        jobs.run_once()  # no webhook arrived: expiry re-reads the intent and finds it paid

    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
    assert invoices_for(user.id)[0].status == InvoiceStatus.PAID
