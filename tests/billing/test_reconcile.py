"""`dicomportal reconcile`: the books against Stripe, one line per difference, and the daily job."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, update

from dicomportal import clock, jobs
from dicomportal.billing import refunds
from dicomportal.billing.money import format_money
from dicomportal.billing.summary import first_invoice
from dicomportal.extensions import db
from dicomportal.models import (
    CreditNote,
    CreditNoteStatus,
    EmailOutbox,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Subscription,
    User,
)
from tests.helpers.stripe import stripe_client
from tests.helpers.webhooks import localstripe_config


@pytest.fixture
def paid(make_customer: Callable[..., User], subscribe: Callable[..., Subscription]) -> Callable[[], Invoice]:
    def make() -> Invoice:
        invoice = first_invoice(subscribe(make_customer()))
        assert invoice is not None and invoice.status == InvoiceStatus.PAID
        return invoice

    return make


def reconcile(runner: Any, *args: str) -> tuple[int, list[str]]:
    result = runner.invoke(args=["reconcile", *args])
    return result.exit_code, result.output.splitlines()


def intent_of(invoice: Invoice) -> str:
    return str(invoice.payments[-1].stripe_payment_intent_id)


def test_books_that_agree_with_stripe_exit_0(runner: Any, paid: Callable[[], Invoice]) -> None:
    first, second = paid(), paid()
    refunds.refund_invoice(first.id, 1000, "goodwill")
    refunds.refund_invoice(second.id, None, "left in the first week")

    code, lines = reconcile(runner, "--report")

    assert code == 0
    assert lines == [
        f"books agree: 2 invoice(s) paid in the last 35 days checked at {lines[-1].split(' at ')[-1]}"
    ]


def test_a_dashboard_refund_without_credit_note_is_reported_then_booked(
    app: Flask, runner: Any, paid: Callable[[], Invoice]
) -> None:
    invoice = paid()
    refund = stripe_client(app).v1.refunds.create(
        params={"payment_intent": intent_of(invoice), "amount": 700}
    )

    code, lines = reconcile(runner, "--report")
    assert code == 1
    assert lines[0] == (
        f"{invoice.number}: refund {refund.id} of $7 at Stripe has no credit note (refunded in our books: $0)"
    )
    assert lines[1].startswith("1 difference(s): 1 invoice(s) paid in the last 35 days")
    assert db.session.scalars(select(CreditNote)).all() == []  # --report changes nothing

    code, lines = reconcile(runner)
    assert code == 1 and lines[0].endswith("[booked]")
    (note,) = db.session.scalars(select(CreditNote)).all()
    assert note.is_issued and note.total_cents == 700 and note.stripe_refund_id == refund.id
    assert reconcile(runner, "--report")[0] == 0


def test_a_failed_refund_we_think_succeeded_is_reported(
    app: Flask, runner: Any, paid: Callable[[], Invoice]
) -> None:
    invoice = paid()
    note = refunds.refund_invoice(invoice.id, 1200, "goodwill")
    localstripe_config(app, f"refunds/{note.stripe_refund_id}/fail")  # its refund.failed webhook is lost

    code, lines = reconcile(runner, "--report")

    assert code == 1
    assert lines[0] == (
        f"{invoice.number}: credit note {note.number} of $12 is issued, "
        f"but Stripe's refund {note.stripe_refund_id} is failed"
    )
    assert len(lines) == 2  # the refunded amounts differ only by that refund: no second line


def test_amounts_that_differ_from_stripe_are_reported(
    app: Flask, runner: Any, paid: Callable[[], Invoice]
) -> None:
    invoice = paid()
    paid_cents = invoice.amount_paid_cents
    note = refunds.refund_invoice(invoice.id, 500, "goodwill")
    db.session.execute(
        update(Payment).where(Payment.invoice_id == invoice.id).values(amount_cents=paid_cents - 100)
    )
    db.session.execute(update(CreditNote).where(CreditNote.id == note.id).values(total_cents=400))
    db.session.commit()

    code, lines = reconcile(runner, "--report")

    assert code == 1
    money = format_money
    assert lines[:2] == [
        f"{invoice.number}: amount mismatch on payment 1: Stripe received {money(paid_cents)}, "
        f"we recorded {money(paid_cents - 100)}",
        f"{invoice.number}: amount mismatch on refunds: Stripe's charge refunded $5, our credit notes $4",
    ]


def test_a_payment_stripe_says_succeeded_but_we_record_as_failed_is_reported(
    runner: Any, paid: Callable[[], Invoice]
) -> None:
    invoice = paid()
    db.session.execute(
        update(Payment).where(Payment.invoice_id == invoice.id).values(status=PaymentStatus.FAILED)
    )
    db.session.commit()

    code, lines = reconcile(runner, "--report")

    assert code == 1
    assert lines[0] == (
        f"{invoice.number}: Stripe's PaymentIntent {intent_of(invoice)} succeeded "
        f"({format_money(invoice.amount_paid_cents)} received), but payment 1 is recorded as failed"
    )


def test_invoices_paid_before_the_window_are_not_checked(
    app: Flask, runner: Any, paid: Callable[[], Invoice]
) -> None:
    invoice = paid()
    stripe_client(app).v1.refunds.create(params={"payment_intent": intent_of(invoice), "amount": 100})

    clock.travel_to(clock.now() + timedelta(days=36))
    assert reconcile(runner, "--report")[0] == 0
    assert reconcile(runner, "--report", "--days", "40")[0] == 1


def test_the_worker_reconciles_once_a_day_and_emails_the_differences(
    app: Flask, paid: Callable[[], Invoice]
) -> None:
    invoice = paid()
    refund = stripe_client(app).v1.refunds.create(
        params={"payment_intent": intent_of(invoice), "amount": 300}
    )

    first = jobs.run_once()["reconcile_books"]
    assert (first["checked"], first["differences"], first["fixed"]) == (1, 1, 1)
    staff = list(
        db.session.scalars(
            select(EmailOutbox).where(
                EmailOutbox.to_address == app.config["SUPPORT_EMAIL"],
                EmailOutbox.subject.like("Reconciliation%"),
            )
        )
    )
    assert len(staff) == 1 and refund.id in staff[0].body_text and invoice.number in staff[0].body_text
    assert db.session.scalar(select(CreditNote.status).where(CreditNote.stripe_refund_id == refund.id)) == (
        CreditNoteStatus.ISSUED
    )

    stripe_client(app).v1.refunds.create(params={"payment_intent": intent_of(invoice), "amount": 200})
    assert not jobs.run_once()["reconcile_books"]  # the next passes the same day call Stripe no more
    clock.travel_to(clock.now() + timedelta(hours=23))
    assert not jobs.run_once()["reconcile_books"]
    clock.travel_to(clock.now() + timedelta(hours=2))
    assert jobs.run_once()["reconcile_books"]["fixed"] == 1


def test_one_invoice_stripe_does_not_know_is_reported_and_the_others_still_checked(
    app: Flask, runner: Any, paid: Callable[[], Invoice]
) -> None:
    broken, fine = paid(), paid()
    db.session.execute(
        update(Payment).where(Payment.invoice_id == broken.id).values(stripe_payment_intent_id="pi_unknown")
    )
    db.session.commit()
    refund = stripe_client(app).v1.refunds.create(params={"payment_intent": intent_of(fine), "amount": 100})

    code, lines = reconcile(runner, "--report")

    assert code == 1
    assert f"{broken.number}: Stripe has no PaymentIntent pi_unknown (payment 1)" in lines
    assert any(line.startswith(f"{fine.number}: refund {refund.id} of $1") for line in lines)
