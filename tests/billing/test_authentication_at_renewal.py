"""Renewals are merchant-initiated (docs/payments.md, "Confirmation rules"): confirmed with
``off_session=true`` on the card saved for it, and when the bank still wants the customer, the
same PaymentIntent waits for them on the dunning schedule, never longer."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from dicomportal import jobs
from dicomportal.billing import cards, entitlements, subscriptions
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.mail import deliver_pending
from dicomportal.models import (
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    User,
)
from tests.helpers.auth import AuthActions
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import THREE_D_SECURE, authenticate_payment, confirm_card_setup, intents_of

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
RENEWAL = START + timedelta(days=31, hours=1)  # the period ends on April 2
ALWAYS_AUTHENTICATES = "4000002760003184"  # Stripe's test card that wants 3-D Secure even off-session


def switch_card(app: Flask, user: User, number: str) -> None:
    setup = cards.verified_setup(user, confirm_card_setup(app, user, number))
    cards.save_default_card(user, setup.payment_method or "")
    db.session.commit()


def tick(at: datetime) -> dict[str, object]:
    with time_machine.travel(at, tick=False):
        counts = jobs.run_once()
        deliver_pending()
    return counts


def renewal_invoice(user: User) -> Invoice:
    invoices = sorted(invoices_for(user.id), key=lambda i: i.id)
    assert len(invoices) == 2, [i.billing_reason for i in invoices]
    return invoices[1]


def subscribed_with(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription], card: str
) -> User:
    """Subscribed on START with a plain card, then the card on file is ``card`` (saved with a
    SetupIntent for off-session use, 3-D Secure answered then, as Stripe.js would)."""
    with time_machine.travel(START, tick=False):
        user = make_customer(email="renewing@example.com")
        subscribe(user, "professional")
        switch_card(app, user, card)
    return user


def test_a_card_saved_for_later_renews_off_session_without_asking_the_customer(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription], smtp: SmtpSink
) -> None:
    """Stripe's 3155 card wants 3-D Secure on-session, but not for an off-session charge once set
    up: a renewal confirmed without ``off_session`` would stop at requires_action here."""
    user = subscribed_with(app, make_customer, subscribe, THREE_D_SECURE)

    tick(RENEWAL)

    invoice = renewal_invoice(user)
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_paid_cents == 2900
    assert [(i.status, i.amount) for i in intents_of(app, user)][-1] == ("succeeded", 2900)
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
    assert "Please confirm" not in str(smtp.last_to(user.email)["Subject"])


def test_a_renewal_the_bank_holds_waits_for_the_customer_and_is_paid_once_on_the_same_intent(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    user = subscribed_with(app, make_customer, subscribe, ALWAYS_AUTHENTICATES)

    counts = tick(RENEWAL)

    invoice = renewal_invoice(user)
    (payment,) = invoice.payments
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    assert payment.failure_code == "authentication_required"
    assert counts["renew_due_subscriptions"]["action_required"] == 1  # type: ignore[index]
    subscription = subscriptions.live_subscription(user.id)
    assert subscription.status == SubscriptionStatus.PAST_DUE
    assert entitlements.entitlements_for(user.id).can_view  # the past-due grace, no more
    assert invoice.next_attempt_at == invoice.finalized_at + timedelta(days=1)
    mail = smtp.last_to(user.email)
    assert "Please confirm your payment" in str(mail["Subject"])
    text = SmtpSink.text(mail)
    assert f"/checkout/authenticate/{payment.id}" in text and "/billing/card" in text
    assert "requires authentication" not in text  # Stripe's own wording stays out of the email

    with time_machine.travel(RENEWAL + timedelta(hours=2), tick=False):
        auth.login("renewing@example.com")
        dashboard = client.get("/account/").get_data(as_text=True)
        assert "Your bank needs you to confirm your payment of $29" in dashboard
        assert f"/checkout/authenticate/{payment.id}" in dashboard
        assert "Your last payment failed" not in dashboard
        assert "$29 once you confirm it" in dashboard  # nothing is charged until the customer confirms

        page = client.get(f"/checkout/authenticate/{payment.id}").get_data(as_text=True)
        assert "Confirm payment of $29" in page and "ending in 3184" in page
        assert 'id="card-form"' not in page  # nothing to type: the saved card is used

        response = client.post(
            f"/checkout/authenticate/{payment.id}/confirm", data={"payment_id": payment.id}
        )
        assert response.status_code == 303
        assert response.headers["Location"].endswith(f"/checkout/authenticate/{payment.id}")
        db.session.expire_all()
        waiting = db.session.get_one(Payment, payment.id)
        assert waiting.status == PaymentStatus.REQUIRES_ACTION and waiting.failure_code is None
        page = client.get(f"/checkout/authenticate/{payment.id}").get_data(as_text=True)
        assert 'id="authenticate-form"' in page and 'data-autostart="true"' in page

        # The bank's dialog: "Complete authentication", then the page posts the payment id back.
        authenticate_payment(app, waiting.stripe_payment_intent_id or "", waiting.client_secret or "")
        response = client.post("/checkout/complete", data={"payment_id": payment.id})
        assert response.status_code == 303

    db.session.expire_all()
    invoice = db.session.get_one(Invoice, invoice.id)
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_paid_cents == 2900
    assert [p.status for p in invoice.payments] == [PaymentStatus.SUCCEEDED]
    renewal_intents = [i for i in intents_of(app, user) if i.metadata["invoice_id"] == str(invoice.id)]
    assert [(i.id, i.status) for i in renewal_intents] == [(payment.stripe_payment_intent_id, "succeeded")]
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE


def test_an_unconfirmed_renewal_is_reminded_on_its_dunning_days_then_ends_with_no_access(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription], smtp: SmtpSink
) -> None:
    user = subscribed_with(app, make_customer, subscribe, ALWAYS_AUTHENTICATES)
    tick(RENEWAL)
    invoice = renewal_invoice(user)
    due = invoice.finalized_at
    assert due is not None

    tick(due + timedelta(hours=12))  # not a dunning day: nothing
    assert len([m for m in smtp.to(user.email) if "confirm your payment" in str(m["Subject"])]) == 1
    tick(due + timedelta(days=1, hours=1))
    tick(due + timedelta(days=3, hours=1))
    reminders = [m for m in smtp.to(user.email) if str(m["Subject"]).startswith("Reminder: please confirm")]
    assert len(reminders) == 2
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.PAST_DUE

    tick(due + timedelta(days=7, hours=1))  # the last day of the schedule (1, 3, 7)

    db.session.expire_all()
    invoice = db.session.get_one(Invoice, invoice.id)
    assert invoice.status == InvoiceStatus.UNCOLLECTIBLE and invoice.amount_paid_cents == 0
    (payment,) = invoice.payments
    assert payment.status == PaymentStatus.FAILED
    assert subscriptions.live_subscription(user.id) is None
    assert not entitlements.entitlements_for(user.id).can_view
    assert "has ended" in str(smtp.last_to(user.email)["Subject"])
    intent = next(i for i in intents_of(app, user) if i.id == payment.stripe_payment_intent_id)
    assert intent.status == "canceled"  # it can never be charged after the customer lost access
    tick(due + timedelta(days=30))
    assert len(invoices_for(user.id)) == 2  # nothing more is billed


def test_a_failed_authentication_leaves_the_renewal_due_and_it_ends_after_the_last_day(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = subscribed_with(app, make_customer, subscribe, ALWAYS_AUTHENTICATES)
    tick(RENEWAL)
    invoice = renewal_invoice(user)
    (payment,) = invoice.payments
    with time_machine.travel(RENEWAL + timedelta(hours=2), tick=False):
        auth.login("renewing@example.com")
        client.post(f"/checkout/authenticate/{payment.id}/confirm", data={"payment_id": payment.id})
        db.session.expire_all()
        waiting = db.session.get_one(Payment, payment.id)
        authenticate_payment(
            app, waiting.stripe_payment_intent_id or "", waiting.client_secret or "", success=False
        )
        page = client.post("/checkout/complete", data={"payment_id": payment.id}).get_data(as_text=True)
        assert "Authentication failed" in page and "still due" in page

    db.session.expire_all()
    invoice = db.session.get_one(Invoice, invoice.id)
    assert invoice.status == InvoiceStatus.OPEN and invoice.amount_paid_cents == 0
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.PAST_DUE

    due = invoice.finalized_at
    assert due is not None
    for days in (1, 3, 7):
        tick(due + timedelta(days=days, hours=1))

    db.session.expire_all()
    assert db.session.get_one(Invoice, invoice.id).status == InvoiceStatus.UNCOLLECTIBLE
    assert subscriptions.live_subscription(user.id) is None
    assert not entitlements.entitlements_for(user.id).can_view
    paid = [i for i in intents_of(app, user) if i.status == "succeeded"]
    assert [i.amount for i in paid] == [2900]  # only the first month, ever
