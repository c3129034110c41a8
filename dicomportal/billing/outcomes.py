"""What a payment's outcome does to its invoice and subscription (called once per outcome by
``collection.record_outcome``): paid, failed (dunning), or waiting for the customer's bank."""

from __future__ import annotations

from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import select

from dicomportal import clock
from dicomportal.billing import audit, notices
from dicomportal.billing.ending import end
from dicomportal.billing.invoicing import mark_paid, void
from dicomportal.extensions import db
from dicomportal.models import (
    BillingReason,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    SubscriptionStatus,
)


def payment_settled(payment: Payment, amount: int) -> None:
    """Let the invoice and subscription follow a payment that just left flight (not committed)."""
    invoice = payment.invoice
    if payment.status == PaymentStatus.SUCCEEDED:
        mark_paid(invoice, amount)
        invoice_paid(invoice)
    elif payment.status == PaymentStatus.FAILED:
        invoice.attempt_count += 1
        invoice.next_attempt_at = next_retry_at(invoice)
        invoice_payment_failed(invoice, payment)
    elif payment.status == PaymentStatus.REQUIRES_ACTION:
        invoice_requires_action(invoice, payment)


def next_retry_at(invoice: Invoice) -> datetime | None:
    """When dunning tries again after ``attempt_count`` failures; None once the schedule is spent."""
    schedule: list[int] = current_app.config["DUNNING_SCHEDULE_DAYS"]
    failures = invoice.attempt_count
    if failures > len(schedule) or invoice.finalized_at is None:
        return None
    return invoice.finalized_at + timedelta(days=schedule[failures - 1])


def invoice_paid(invoice: Invoice) -> None:
    """A paid invoice activates an incomplete subscription and ends dunning."""
    subscription = invoice.subscription
    audit.record("invoice.paid", invoice.user_id, invoice, amount_cents=invoice.amount_paid_cents)
    notices.invoice_paid(invoice)
    if subscription is None:
        return
    if subscription.is_incomplete or (subscription.is_past_due and not _other_open_invoices(invoice)):
        subscription.status = SubscriptionStatus.ACTIVE


def _other_open_invoices(invoice: Invoice) -> bool:
    query = select(Invoice.id).where(
        Invoice.subscription_id == invoice.subscription_id,
        Invoice.status == InvoiceStatus.OPEN,
        Invoice.id != invoice.id,
    )
    return db.session.scalar(query) is not None


def invoice_payment_failed(invoice: Invoice, payment: Payment) -> None:
    """A declined first payment ends the subscription at once (the invoice is voided); a declined
    renewal makes it past due and dunning retries; when the retries are spent it ends."""
    subscription = invoice.subscription
    audit.record(
        "payment.failed", invoice.user_id, payment, invoice=invoice.number, code=payment.failure_code
    )
    if subscription is None:
        return
    if invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE:
        void(invoice)
        subscription.status = SubscriptionStatus.ENDED
        subscription.ended_at = clock.now()
        subscription.ended_reason = "first_payment_failed"
        return
    if invoice.next_attempt_at is None:
        invoice.status = InvoiceStatus.UNCOLLECTIBLE
        end(subscription, "unpaid")
        notices.subscription_ended_unpaid(subscription, invoice)
        return
    subscription.status = SubscriptionStatus.PAST_DUE
    notices.payment_failed(invoice, payment)


def invoice_requires_action(invoice: Invoice, payment: Payment) -> None:
    """The bank wants the customer to authenticate: at sign-up the page asks at once (and an
    unanswered one expires, see ``expire_incomplete_subscriptions``). Otherwise the payment waits
    on the dunning schedule like a decline (docs/payments.md): the subscription is past due (its
    grace, never more), the customer is emailed a link to confirm that same payment, reminded on
    each retry day, and after the last one it ends unpaid (:func:`follow_up_waiting`)."""
    subscription = invoice.subscription
    if invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE:
        return
    invoice.attempt_count += 1
    invoice.next_attempt_at = next_retry_at(invoice) or clock.now()
    audit.record("payment.action_required", invoice.user_id, payment, invoice=invoice.number)
    if subscription is not None and not subscription.has_ended:
        subscription.status = SubscriptionStatus.PAST_DUE
    notices.payment_action_required(invoice, payment)


def follow_up_waiting(invoice: Invoice, payment: Payment) -> bool:
    """A dunning day for a payment still waiting for the customer's bank: remind them, or, once the
    schedule is spent, say so (False): the caller cancels the intent and records the failure,
    which ends the subscription like an unpaid renewal (:func:`invoice_payment_failed`)."""
    if invoice.attempt_count >= len(current_app.config["DUNNING_SCHEDULE_DAYS"]):
        return False
    invoice.attempt_count += 1
    invoice.next_attempt_at = next_retry_at(invoice)
    audit.record("payment.action_reminded", invoice.user_id, payment, invoice=invoice.number)
    notices.payment_action_required(invoice, payment, reminder=True)
    return True
