"""POST /webhooks/stripe: only signed events count, each once, and any order converges on the truth."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dicomportal.billing import collection, subscriptions
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.mail import jobs as mail_jobs
from dicomportal.models import (
    AuditLog,
    InvoiceStatus,
    Payment,
    StripeEvent,
    Subscription,
    SubscriptionStatus,
    User,
)
from tests.helpers.environment import WEBHOOK_SECRET
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import THREE_D_SECURE, authenticate_payment, stripe_client

# Stripe's own example of every API object in today's shape: a copy of stripe/openapi's
# fixtures3.json (MIT licence, tests/fixtures/LICENSE-stripe-openapi); CI's clone has no shared/.
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe_fixtures3.json"


def signed(payload: bytes, secret: str = WEBHOOK_SECRET) -> dict[str, str]:
    timestamp = int(time.time())
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return {"Stripe-Signature": f"t={timestamp},v1={digest}", "Content-Type": "application/json"}


def event(event_type: str, obj: dict[str, Any], event_id: str = "evt_test_1") -> bytes:
    body = {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "api_version": "2017-08-15",
        "data": {"object": obj},
    }
    return json.dumps(body).encode()


def deliver(client: FlaskClient, payload: bytes, headers: dict[str, str] | None = None) -> int:
    return client.post("/webhooks/stripe", data=payload, headers=headers or signed(payload)).status_code


@pytest.fixture
def awaiting_3ds(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> tuple[User, Payment]:
    """A customer whose first payment waits for 3-D Secure, which they then complete at Stripe."""
    user = make_customer()
    subscribe(user, card=THREE_D_SECURE)
    (payment,) = invoices_for(user.id)[0].payments
    authenticate_payment(app, payment.stripe_payment_intent_id, payment.client_secret, success=True)
    return user, payment


def test_unsigned_or_forged_events_are_refused_and_change_nothing(
    client: FlaskClient, awaiting_3ds: tuple[User, Payment]
) -> None:
    user, payment = awaiting_3ds
    payload = event("payment_intent.succeeded", {"id": payment.stripe_payment_intent_id})

    assert deliver(client, payload, {"Content-Type": "application/json"}) == 400
    assert deliver(client, payload, signed(payload, secret="whsec_forged")) == 400
    assert deliver(client, b"not json", signed(b"not json")) == 400

    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.INCOMPLETE


def test_the_same_event_five_times_has_one_effect(
    client: FlaskClient, awaiting_3ds: tuple[User, Payment], smtp: SmtpSink
) -> None:
    user, payment = awaiting_3ds
    payload = event(
        "payment_intent.succeeded", {"id": payment.stripe_payment_intent_id, "status": "succeeded"}
    )

    assert [deliver(client, payload) for _ in range(5)] == [200] * 5
    mail_jobs.deliver_mail()  # the worker sends queued mail

    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
    invoice = invoices_for(user.id)[0]
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_paid_cents == invoice.total_cents
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 1
    paid_entries = select(func.count()).where(AuditLog.action == "invoice.paid")
    assert db.session.scalar(paid_entries) == 1
    assert len([m for m in smtp.to(user.email) if "Welcome" in m["Subject"]]) == 1


def test_events_out_of_order_reach_the_same_final_state(
    client: FlaskClient, awaiting_3ds: tuple[User, Payment]
) -> None:
    user, payment = awaiting_3ds
    intent = {"id": payment.stripe_payment_intent_id}
    stale_failure = event(
        "payment_intent.payment_failed", {**intent, "status": "requires_payment_method"}, "evt_2"
    )
    stale_action = event("payment_intent.requires_action", {**intent, "status": "requires_action"}, "evt_1")
    success = event("payment_intent.succeeded", {**intent, "status": "succeeded"}, "evt_3")

    for payload in (stale_failure, success, stale_action):
        assert deliver(client, payload) == 200

    # Each handler re-read the PaymentIntent: it succeeded, whatever the events claimed.
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
    assert invoices_for(user.id)[0].status == InvoiceStatus.PAID


def test_an_event_in_todays_api_shape_is_handled(
    client: FlaskClient, awaiting_3ds: tuple[User, Payment]
) -> None:
    """What real Stripe sends (Stripe's own example object, current API version), around our intent."""
    user, payment = awaiting_3ds
    resources = json.loads(FIXTURES.read_text())["resources"]
    obj = copy.deepcopy(resources["payment_intent"])
    obj |= {
        "id": payment.stripe_payment_intent_id,
        "status": "succeeded",
        "metadata": {"payment_id": str(payment.id)},
    }
    body = copy.deepcopy(resources["event"])
    body |= {"id": "evt_live_shape", "type": "payment_intent.succeeded", "api_version": "2026-10-28"}
    body["data"] = {"object": obj, "previous_attributes": {}}
    payload = json.dumps(body).encode()

    assert deliver(client, payload) == 200
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE


def test_unknown_event_types_are_acknowledged(client: FlaskClient) -> None:
    payload = event("charge.dispute.created", {"id": "dp_123"})
    assert deliver(client, payload) == 200
    assert db.session.scalar(select(StripeEvent.processed_at)) is not None


def test_a_failing_handler_answers_500_and_the_retry_succeeds(
    client: FlaskClient, awaiting_3ds: tuple[User, Payment], monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicomportal.billing import webhooks

    user, payment = awaiting_3ds
    payload = event("payment_intent.succeeded", {"id": payment.stripe_payment_intent_id})

    def broken(obj: dict[str, Any]) -> None:
        raise RuntimeError("database hiccup")

    monkeypatch.setitem(webhooks.HANDLERS, "payment_intent.succeeded", broken)
    assert deliver(client, payload) == 500
    stored = db.session.scalar(select(StripeEvent))
    assert stored.processed_at is None and "database hiccup" in stored.error
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.INCOMPLETE

    monkeypatch.undo()
    assert deliver(client, payload) == 200  # Stripe's retry
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE


def test_customer_deleted_at_stripe_forgets_the_saved_cards(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    subscribe(user)
    customer_id = user.stripe_customer_id
    stripe_client(app).v1.customers.delete(customer_id)

    assert deliver(client, event("customer.deleted", {"id": customer_id})) == 200

    db.session.refresh(user)
    assert user.stripe_customer_id is None and collection.default_card(user.id) is None


def test_a_forged_customer_deleted_for_a_customer_stripe_still_has_forgets_nothing(
    client: FlaskClient, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    """A validly signed but stale or replayed event is a hint: Stripe is asked before acting."""
    user = make_customer()
    subscribe(user)
    customer_id = user.stripe_customer_id
    card = collection.default_card(user.id)

    assert deliver(client, event("customer.deleted", {"id": customer_id})) == 200

    db.session.refresh(user)
    assert user.stripe_customer_id == customer_id
    assert collection.default_card(user.id) == card and card is not None


# --- what real Stripe sends, and what it must never be able to do ---------------------------------

# Event types per object beyond <object>.created/.updated/.deleted (Stripe's event type list).
MORE_TYPES = {
    "payment_intent": [
        "succeeded",
        "payment_failed",
        "requires_action",
        "canceled",
        "processing",
        "amount_capturable_updated",
        "partially_funded",
    ],
    "setup_intent": ["succeeded", "setup_failed", "requires_action", "canceled"],
    "charge": ["succeeded", "failed", "refunded", "captured", "pending", "expired"],
    "checkout.session": ["completed", "expired", "async_payment_succeeded", "async_payment_failed"],
    "invoice": ["paid", "payment_failed", "payment_succeeded", "finalized", "voided", "upcoming"],
    "customer": ["deleted"],
    "payment_method": ["attached", "detached", "automatically_updated"],
    "subscription": ["paused", "resumed", "trial_will_end", "pending_update_applied"],
    "payout": ["paid", "failed", "canceled"],
    "refund": ["failed"],
}
# Objects whose events Stripe names under another prefix.
PREFIX = {
    "subscription": "customer.subscription",
    "tax_id": "customer.tax_id",
    "discount": "customer.discount",
    "dispute": "charge.dispute",
    "card": "customer.source",
    "bank_account": "customer.source",
}


def every_stripe_event() -> list[tuple[str, dict[str, Any]]]:
    """Each example object of fixtures3.json as the events of its types (about 570 of them)."""
    resources = json.loads(FIXTURES.read_text())["resources"]
    events = []
    for name, obj in sorted(resources.items()):
        prefix = PREFIX.get(name, name)
        for action in ["created", "updated", "deleted", *MORE_TYPES.get(name, [])]:
            events.append((f"{prefix}.{action}", obj))
    return events


def test_every_event_stripe_can_send_is_stored_as_received_and_acknowledged(client: FlaskClient) -> None:
    """Real Stripe objects carry ``*_decimal`` fields: nothing may turn them into 500s."""
    events = every_stripe_event()
    assert len(events) > 500
    answers = {}
    for number, (event_type, obj) in enumerate(events):
        body = {"id": f"evt_fixture_{number}", "object": "event", "type": event_type, "data": {"object": obj}}
        payload = json.dumps(body, indent=1).encode()
        answers[event_type] = deliver(client, payload)
        stored = db.session.scalar(select(StripeEvent).where(StripeEvent.stripe_event_id == body["id"]))
        assert stored is not None and stored.payload.encode() == payload, event_type

    assert {t: a for t, a in answers.items() if a != 200} == {}
    assert "price.created" in answers and "customer.subscription.updated" in answers
    unprocessed = select(func.count()).where(StripeEvent.processed_at.is_(None))
    assert db.session.scalar(unprocessed) == 0


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2, 3]",
        b'"an event"',
        b"42",
        b"null",
        b'{"type": "payment_intent.succeeded", "data": {"object": {}}}',
        b'{"id": 7, "type": "payment_intent.succeeded", "data": {"object": {}}}',
        b'{"id": "evt_1", "data": {"object": {}}}',
        b'{"id": "evt_1", "type": "customer.deleted", "data": []}',
        b'{"id": "evt_1", "type": "customer.deleted", "data": {"object": "cus_1"}}',
        b'\xff\xfe{"id": "evt_1"}',
    ],
)
def test_a_signed_body_that_is_not_an_event_is_refused_and_stored_nowhere(
    client: FlaskClient, body: bytes
) -> None:
    assert deliver(client, body) == 400
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0


class CountingStream:
    """A request body of ``size`` bytes that counts how much of it the app reads."""

    def __init__(self, size: int) -> None:
        self.remaining, self.read_bytes = size, 0

    def read(self, n: int = -1) -> bytes:
        n = self.remaining if n is None or n < 0 else min(n, self.remaining)
        self.remaining -= n
        self.read_bytes += n
        return b"x" * n

    def readline(self, n: int = -1) -> bytes:
        return self.read(n)


def test_a_two_megabyte_webhook_is_refused_with_413_before_it_is_read(
    app: Flask, client: FlaskClient
) -> None:
    size = 2 * 1024 * 1024
    declared = CountingStream(size)
    response = client.post(
        "/webhooks/stripe",
        headers=signed(b"x"),
        environ_overrides={"wsgi.input": declared, "CONTENT_LENGTH": str(size)},
    )
    assert response.status_code == 413
    assert declared.read_bytes == 0

    undeclared = CountingStream(size)  # chunked: no Content-Length, read only up to the limit
    response = client.post(
        "/webhooks/stripe",
        headers=signed(b"x"),
        environ_overrides={"wsgi.input": undeclared, "CONTENT_LENGTH": "", "wsgi.input_terminated": True},
    )
    assert response.status_code == 413
    assert undeclared.read_bytes <= app.config["WEBHOOK_MAX_CONTENT_LENGTH"] + 1
    assert db.session.scalar(select(func.count()).select_from(StripeEvent)) == 0


def test_other_requests_have_a_size_limit_too(app: Flask, client: FlaskClient) -> None:
    size = app.config["MAX_CONTENT_LENGTH"] + 1
    stream = CountingStream(size)
    response = client.post(
        "/auth/login", environ_overrides={"wsgi.input": stream, "CONTENT_LENGTH": str(size)}
    )
    assert response.status_code == 413 and stream.read_bytes == 0
