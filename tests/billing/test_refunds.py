"""Refunds: money back through Stripe, a numbered credit note each, never more than was paid."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from sqlalchemy import select

from dicomportal import clock, jobs
from dicomportal.accounts import create_user
from dicomportal.billing import refunds
from dicomportal.billing.money import format_money
from dicomportal.billing.refunds import RefundRefused
from dicomportal.billing.summary import first_invoice
from dicomportal.extensions import db
from dicomportal.models import (
    AuditLog,
    CreditNote,
    CreditNoteStatus,
    EmailOutbox,
    Invoice,
    InvoiceStatus,
    Role,
    Subscription,
    User,
)
from tests.helpers.stripe import stripe_client


def paid_invoice(make_customer: Callable[..., User], subscribe: Callable[..., Subscription]) -> Invoice:
    subscription = subscribe(make_customer())
    invoice = first_invoice(subscription)
    assert invoice is not None and invoice.status == InvoiceStatus.PAID and invoice.amount_paid_cents > 0
    return invoice


def stripe_refunds(app: Flask, invoice: Invoice) -> list[int]:
    intent = invoice.payments[-1].stripe_payment_intent_id
    listed = stripe_client(app).v1.refunds.list(params={"payment_intent": intent, "limit": 100})
    return sorted(r.amount for r in listed.auto_paging_iter())


def test_part_then_the_rest_gives_two_numbered_credit_notes_and_a_refunded_invoice(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    paid = invoice.amount_paid_cents

    first = refunds.refund_invoice(invoice.id, 1000, "Overage charged in error")
    assert invoice.status == InvoiceStatus.PAID and invoice.is_partially_refunded
    second = refunds.refund_invoice(invoice.id, None, "Customer left in the first week")

    year = first.issued_at.year if first.issued_at else 0
    assert [first.number, second.number] == [f"CN-{year}-000001", f"CN-{year}-000002"]
    assert (first.total_cents, second.total_cents) == (1000, paid - 1000)
    assert first.subtotal_cents + second.subtotal_cents == invoice.subtotal_cents
    assert first.tax_cents + second.tax_cents == invoice.tax_cents
    db.session.refresh(invoice)
    assert invoice.status == InvoiceStatus.REFUNDED and invoice.amount_refunded_cents == paid
    assert stripe_refunds(app, invoice) == sorted([1000, paid - 1000])
    audits = db.session.scalars(select(AuditLog).where(AuditLog.action == "invoice.refunded")).all()
    assert [a.details["credit_note"] for a in audits] == [first.number, second.number]
    mails = db.session.scalars(select(EmailOutbox).where(EmailOutbox.subject.like("Refund of %"))).all()
    assert [m.subject for m in mails] == [
        f"Refund of $10 for invoice {invoice.number}",
        f"Refund of {format_money(paid - 1000)} for invoice {invoice.number}",
    ]
    assert f"credit note {first.number}" in mails[0].body_text and "/billing/invoices" in mails[0].body_text

    with pytest.raises(RefundRefused, match="already refunded in full"):
        refunds.refund_invoice(invoice.id, 1, "once more")
    assert len(stripe_refunds(app, invoice)) == 2


def test_more_than_what_remains_is_refused_and_nothing_changes(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    refunds.refund_invoice(invoice.id, 500, "goodwill")

    with pytest.raises(RefundRefused, match="more than what remains"):
        refunds.refund_invoice(invoice.id, invoice.amount_paid_cents, "too much")

    db.session.refresh(invoice)
    assert invoice.amount_refunded_cents == 500 and invoice.status == InvoiceStatus.PAID
    assert stripe_refunds(app, invoice) == [500]
    assert db.session.scalar(select(CreditNote).where(CreditNote.status != CreditNoteStatus.ISSUED)) is None


@pytest.mark.parametrize(
    ("amount", "reason", "message"), [(0, "why", "at least one cent"), (5, " ", "reason")]
)
def test_a_refund_needs_a_positive_amount_and_a_reason(
    app: Flask,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    amount: int,
    reason: str,
    message: str,
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    with pytest.raises(RefundRefused, match=message):
        refunds.refund_invoice(invoice.id, amount, reason)
    assert stripe_refunds(app, invoice) == []


def test_two_simultaneous_refunds_of_the_whole_invoice_refund_it_once(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    invoice_id, paid = invoice.id, invoice.amount_paid_cents
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def refund_all() -> None:
        with app.app_context():
            start.wait()
            try:
                refunds.refund_invoice(invoice_id, paid, "double click")
                outcomes.append("refunded")
            except RefundRefused:
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=refund_all) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)

    assert sorted(outcomes) == ["refunded", "refused"]
    assert stripe_refunds(app, invoice) == [paid]


def test_refund_command_prints_the_credit_note_and_refuses_a_third(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    staff = create_user("help@example.com", "correct horse battery", "Sam Support", Role.SUPPORT)
    db.session.commit()
    runner = app.test_cli_runner()

    part = runner.invoke(
        args=[
            "refund",
            invoice.number,
            "--amount",
            "700",
            "--reason",
            "Duplicate add-on",
            "--by",
            staff.email,
        ]
    )
    rest = runner.invoke(args=["refund", invoice.number, "--reason", "Cancelled in the first week"])
    third = runner.invoke(args=["refund", invoice.number, "--amount", "1", "--reason", "again"])

    assert part.exit_code == 0, part.output
    assert "CN-" in part.output and "$7" in part.output
    assert rest.exit_code == 0 and "refunded in full" in rest.output
    assert third.exit_code != 0 and "already refunded in full" in third.output
    assert len(stripe_refunds(app, invoice)) == 2
    audits = db.session.scalars(select(AuditLog).where(AuditLog.action == "invoice.refunded")).all()
    assert [a.actor_id for a in audits] == [staff.id, None]
    assert audits[0].details["reason"] == "Duplicate add-on" and audits[0].details["amount_cents"] == 700


def test_a_refund_interrupted_before_stripe_answered_is_finished_by_the_next_one(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    paid = invoice.amount_paid_cents
    # Two refunds reserved, then the process died: Stripe made the first, never heard of the second.
    made = refunds._reserve(invoice, 300, "made at Stripe", None)
    lost = refunds._reserve(invoice, 400, "never reached Stripe", None)
    intent = invoice.payments[-1].stripe_payment_intent_id
    stripe_client(app).v1.refunds.create(
        params={"payment_intent": intent, "amount": 300, "metadata": refunds.metadata_of(made)}
    )

    with time_machine.travel(clock.now() + timedelta(minutes=5)):
        rest = refunds.refund_invoice(invoice.id, None, "the rest")

    db.session.refresh(made)
    db.session.refresh(lost)
    assert made.status == CreditNoteStatus.ISSUED and made.number and made.number.endswith("000001")
    assert lost.status == CreditNoteStatus.FAILED and lost.number is None
    assert rest.total_cents == paid - 300 and rest.number and rest.number.endswith("000002")
    db.session.refresh(invoice)
    assert invoice.status == InvoiceStatus.REFUNDED and invoice.amount_refunded_cents == paid
    assert stripe_refunds(app, invoice) == sorted([300, paid - 300])


def test_the_worker_finishes_interrupted_refunds_but_not_one_still_waiting_for_stripe(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    made = refunds._reserve(invoice, 300, "made at Stripe", None)
    intent = invoice.payments[-1].stripe_payment_intent_id
    stripe_client(app).v1.refunds.create(
        params={"payment_intent": intent, "amount": 300, "metadata": refunds.metadata_of(made)}
    )

    jobs.run_once()  # a few seconds old: perhaps still waiting for Stripe's answer elsewhere
    db.session.refresh(made)
    assert made.status == CreditNoteStatus.PENDING
    with time_machine.travel(clock.now() + timedelta(minutes=5)):
        jobs.run_once()

    db.session.refresh(made)
    assert made.status == CreditNoteStatus.ISSUED and made.number
    db.session.refresh(invoice)
    assert invoice.amount_refunded_cents == 300 and invoice.is_partially_refunded
