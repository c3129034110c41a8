"""Refunds made in the Stripe Dashboard get their credit note once; refunds that fail reverse theirs."""

from __future__ import annotations

import re
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dicomportal.billing import refunds
from dicomportal.billing.money import format_money
from dicomportal.devtools.stripe_server import LocalStripe
from dicomportal.documents.records import credit_note_document
from dicomportal.extensions import db
from dicomportal.models import (
    AuditLog,
    CreditNote,
    CreditNoteStatus,
    EmailOutbox,
    Invoice,
    InvoiceStatus,
    StripeEvent,
    Subscription,
    User,
)
from tests.helpers.auth import AuthActions
from tests.helpers.environment import WEBHOOK_SECRET
from tests.helpers.stripe import intent_of, paid_invoice, stripe_client
from tests.helpers.webhooks import localstripe_config, post_event, stripe_object


def refund_in_dashboard(app: Flask, invoice: Invoice, amount: int | None = None) -> dict[str, object]:
    """What support does in the Stripe Dashboard: a refund with none of our metadata."""
    params: dict[str, object] = {"payment_intent": intent_of(invoice)}
    if amount is not None:
        params["amount"] = amount
    refund = stripe_client(app).v1.refunds.create(params=params)  # type: ignore[arg-type]
    return stripe_object(
        "refund", id=refund.id, amount=refund.amount, charge=refund.charge, payment_intent=intent_of(invoice)
    )


def notes_of(invoice: Invoice) -> list[CreditNote]:
    return list(db.session.scalars(select(CreditNote).where(CreditNote.invoice_id == invoice.id)))


def mail_to(address: str) -> list[EmailOutbox]:
    return list(db.session.scalars(select(EmailOutbox).where(EmailOutbox.to_address == address)))


def test_a_refund_made_in_the_stripe_dashboard_gets_one_credit_note_however_often_stripe_tells_us(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    refund = refund_in_dashboard(app, invoice)
    charge = stripe_object("charge", id=refund["charge"], payment_intent=intent_of(invoice), refunded=True)

    deliveries = [post_event(client, "refund.created", refund, "evt_created") for _ in range(3)]
    deliveries += [post_event(client, "charge.refunded", charge, "evt_charge_refunded")]
    deliveries += [post_event(client, "refund.updated", refund, "evt_updated")]

    assert deliveries == [200] * 5
    (note,) = notes_of(invoice)
    db.session.refresh(invoice)
    year = invoice.finalized_at.year if invoice.finalized_at else 0
    assert note.status == CreditNoteStatus.ISSUED and note.number == f"CN-{year}-000001"
    assert note.total_cents == invoice.amount_paid_cents and note.stripe_refund_id == refund["id"]
    assert invoice.status == InvoiceStatus.REFUNDED and invoice.refundable_cents == 0
    printed = credit_note_document(note, app.config)
    assert printed.credited_invoice_number == invoice.number
    assert printed.reason == "Refund made in Stripe (outside the portal)"
    (entry,) = db.session.scalars(select(AuditLog).where(AuditLog.action == "invoice.refunded"))
    assert entry.details["source"] == "Stripe (outside the portal)" and entry.actor_id is None
    amount = format_money(note.total_cents)
    assert [m.subject for m in mail_to(invoice.user.email) if m.subject.startswith("Refund")] == [
        f"Refund of {amount} for invoice {invoice.number}"
    ]
    (staff,) = mail_to(app.config["SUPPORT_EMAIL"])
    assert f"{amount} of invoice {invoice.number}" in staff.subject and note.number in staff.body_text


def test_a_partial_refund_in_the_dashboard_leaves_the_rest_to_refund_in_the_portal(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    paid = invoice.amount_paid_cents
    refund = refund_in_dashboard(app, invoice, 1000)
    charge = stripe_object("charge", id=refund["charge"], payment_intent=intent_of(invoice), refunded=False)

    assert post_event(client, "charge.refunded", charge, "evt_partial") == 200

    db.session.refresh(invoice)
    assert invoice.status == InvoiceStatus.PAID and invoice.is_partially_refunded
    assert invoice.refundable_cents == paid - 1000
    rest = refunds.refund_invoice(invoice.id, None, "Customer left")
    assert rest.total_cents == paid - 1000
    first, second = notes_of(invoice)
    assert (first.total_cents, first.reason) == (1000, "Refund made in Stripe (outside the portal)")
    assert first.subtotal_cents + second.subtotal_cents == invoice.subtotal_cents
    db.session.refresh(invoice)
    assert invoice.status == InvoiceStatus.REFUNDED


def test_a_refund_that_fails_at_stripe_reverses_its_credit_note_reopens_the_amount_and_tells_staff(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    note = refunds.refund_invoice(invoice.id, None, "Customer left in the first week")
    assert invoice.status == InvoiceStatus.REFUNDED
    failed = localstripe_config(
        app, f"refunds/{note.stripe_refund_id}/fail", failure_reason="lost_or_stolen_card"
    )
    refund = stripe_object(
        "refund",
        id=failed["id"],
        status="failed",
        failure_reason="lost_or_stolen_card",
        payment_intent=intent_of(invoice),
        amount=note.total_cents,
    )

    assert post_event(client, "refund.failed", refund, "evt_failed") == 200
    assert post_event(client, "refund.updated", refund, "evt_failed_updated") == 200

    db.session.refresh(note)
    db.session.refresh(invoice)
    year = note.issued_at.year if note.issued_at else 0
    assert note.status == CreditNoteStatus.REVERSED and note.number == f"CN-{year}-000001"
    assert note.reversal_number == f"CNR-{year}-000001" and note.reversed_at is not None
    assert invoice.status == InvoiceStatus.PAID and invoice.refundable_cents == invoice.amount_paid_cents
    (staff,) = mail_to(app.config["SUPPORT_EMAIL"])
    assert staff.subject.startswith(
        f"Refund failed: {format_money(note.total_cents)} of invoice {invoice.number}"
    )
    assert "lost_or_stolen_card" in staff.body_text
    reversals = db.session.scalars(select(AuditLog).where(AuditLog.action == "invoice.refund_reversed")).all()
    assert [r.details["reversal"] for r in reversals] == [note.reversal_number]
    auth.login(invoice.user.email, "correct horse battery")
    listed = " ".join(re.sub(r"<[^>]+>", " ", client.get("/billing/invoices").get_data(as_text=True)).split())
    assert f"Credit note {note.number} Refund failed" in listed  # kept in the books, marked
    assert client.get(f"/billing/credit-notes/{note.id}/pdf").status_code == 200
    again = refunds.refund_invoice(invoice.id, None, "Refund again to the new card")
    assert again.number == f"CN-{year}-000002" and again.total_cents == invoice.amount_paid_cents


def test_a_refund_of_someone_elses_payment_or_one_that_failed_books_nothing(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    refund = refund_in_dashboard(app, invoice, 500)
    localstripe_config(app, f"refunds/{refund['id']}/fail")
    stranger = stripe_object("refund", id="re_not_ours", payment_intent="pi_not_ours")

    assert post_event(client, "refund.created", {**refund, "status": "succeeded"}, "evt_1") == 200
    assert post_event(client, "refund.created", stranger, "evt_2") == 200

    assert notes_of(invoice) == []
    db.session.refresh(invoice)
    assert invoice.amount_refunded_cents == 0 and invoice.status == InvoiceStatus.PAID


@pytest.mark.parametrize("part", [True, False], ids=["part", "all"])
def test_two_deliveries_at_the_same_moment_book_the_dashboard_refund_once(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription], part: bool
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    amount = 1500 if part else invoice.amount_paid_cents
    refund = refund_in_dashboard(app, invoice, amount)
    charge = stripe_object("charge", id=refund["charge"], payment_intent=intent_of(invoice))
    deliveries = [("refund.created", refund, "evt_a"), ("charge.refunded", charge, "evt_b")]
    answers: dict[str, int] = {}
    start = threading.Barrier(len(deliveries))

    def deliver(event_type: str, obj: dict[str, object], event_id: str) -> None:
        start.wait()
        answers[event_id] = post_event(app.test_client(), event_type, obj, event_id)

    threads = [threading.Thread(target=deliver, args=d) for d in deliveries]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    for event_type, obj, event_id in deliveries:  # Stripe retries an event that was answered 500
        if answers[event_id] != 200:
            assert post_event(app.test_client(), event_type, obj, event_id) == 200

    db.session.expire_all()
    (note,) = notes_of(invoice)
    assert note.total_cents == amount and note.is_issued
    assert db.session.get_one(Invoice, invoice.id).amount_refunded_cents == amount
    assert len([m for m in mail_to(invoice.user.email) if m.subject.startswith("Refund")]) == 1


def test_localstripe_delivers_the_refund_events_itself_and_the_refund_is_booked_once(
    app: Flask,
    live_server: str,
    stripe_server: LocalStripe,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    """The real delivery: localstripe (taught by devtools/localstripe_refunds.py) posts
    refund.created and charge.refunded about a second after the refund, at about the same moment."""
    invoice = paid_invoice(make_customer, subscribe)
    hook = {"secret": WEBHOOK_SECRET, "events[]": ["refund.created", "charge.refunded"]}
    config = f"{stripe_server.api_base}/_config/webhooks/outside-refunds-test"
    urlencode = urllib.parse.urlencode
    urllib.request.urlopen(
        config, urlencode({"url": f"{live_server}/webhooks/stripe", **hook}, True).encode()
    ).close()
    try:
        refund = refund_in_dashboard(app, invoice, 900)
        # (events about the refunds of earlier tests may arrive too: localstripe sends each a second later)
        about_it = StripeEvent.payload.contains(str(refund["id"]))
        deadline = time.monotonic() + 15
        while (
            time.monotonic() < deadline
            and db.session.scalar(select(func.count()).where(about_it, StripeEvent.processed_at.is_not(None)))
            < 2
        ):
            time.sleep(0.2)
            db.session.rollback()
    finally:  # the session's localstripe outlives this server: send nothing more to its address
        never = {"url": "http://127.0.0.1:9/", "secret": WEBHOOK_SECRET, "events[]": ["never.sent"]}
        urllib.request.urlopen(config, urlencode(never, True).encode()).close()

    db.session.expire_all()
    delivered = db.session.scalars(
        select(StripeEvent.type).where(about_it, StripeEvent.processed_at.is_not(None))
    )
    assert sorted(delivered) == ["charge.refunded", "refund.created"]
    (note,) = notes_of(invoice)
    assert note.stripe_refund_id == refund["id"] and note.total_cents == 900 and note.is_issued
