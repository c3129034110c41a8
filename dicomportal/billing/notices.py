"""Emails about billing events. Billing services call these; each queues one outbox row that is
committed with the change it reports (see dicomportal.mail)."""

from __future__ import annotations

from flask import current_app

from dicomportal.billing import declines
from dicomportal.billing.money import format_money
from dicomportal.config import support_address
from dicomportal.mail import absolute_url, queue_email
from dicomportal.models import (
    BillingReason,
    CreditNote,
    Dispute,
    EarlyFraudWarning,
    Invoice,
    Payment,
    Subscription,
)


def invoice_paid(invoice: Invoice) -> None:
    """A receipt; for a new subscription it doubles as the welcome email."""
    welcome = invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE
    plan = invoice.subscription.price.plan.name if invoice.subscription else None
    subject = (
        f"Welcome to DICOM Portal {plan}" if welcome and plan else f"Receipt for invoice {invoice.number}"
    )
    queue_email(
        invoice.user.email,
        subject,
        "billing_receipt",
        user_id=invoice.user_id,
        invoice=invoice,
        plan=plan,
        welcome=welcome,
        amount=format_money(invoice.amount_paid_cents, invoice.currency),
        account_url=absolute_url("/account/"),
    )


def payment_failed(invoice: Invoice, payment: Payment) -> None:
    """Dunning: what failed, when we try again, and a link to update the card and pay now."""
    queue_email(
        invoice.user.email,
        f"Your payment for invoice {invoice.number} failed",
        "billing_payment_failed",
        user_id=invoice.user_id,
        invoice=invoice,
        payment=payment,
        reason=declines.reason_for(payment),
        amount=format_money(invoice.amount_due_cents, invoice.currency),
        update_card_url=absolute_url("/billing/card"),
    )


def payment_action_required(invoice: Invoice, payment: Payment, reminder: bool = False) -> None:
    """The bank asks the customer to authenticate a payment they were not there for (a renewal):
    a link to confirm that same payment, and one to pay with another card instead; sent again on
    each dunning day while it waits (``reminder``)."""
    subject = f"Please confirm your payment for invoice {invoice.number}"
    queue_email(
        invoice.user.email,
        f"Reminder: {subject[0].lower()}{subject[1:]}" if reminder else subject,
        "billing_action_required",
        user_id=invoice.user_id,
        invoice=invoice,
        amount=format_money(invoice.amount_due_cents, invoice.currency),
        confirm_url=absolute_url(f"/checkout/authenticate/{payment.id}"),
        other_card_url=absolute_url("/billing/card"),
    )


def subscription_ended_unpaid(subscription: Subscription, invoice: Invoice) -> None:
    """After the last retry failed: access has stopped, data is kept until the restore deadline."""
    queue_email(
        invoice.user.email,
        "Your DICOM Portal subscription has ended",
        "billing_ended_unpaid",
        user_id=invoice.user_id,
        subscription=subscription,
        invoice=invoice,
        amount=format_money(invoice.amount_due_cents, invoice.currency),
        pricing_url=absolute_url("/plans/"),
    )


def _about(subscription: Subscription, subject: str, template: str, **context: object) -> None:
    """One email about the customer's subscription, with the links every such email carries."""
    user = subscription.user
    queue_email(
        user.email,
        subject,
        template,
        user_id=user.id,
        name=user.name,
        subscription=subscription,
        plan=subscription.price.plan.name,
        account_url=absolute_url("/account/"),
        pricing_url=absolute_url("/plans/"),
        **context,
    )


def subscription_canceled(subscription: Subscription) -> None:
    """Cancelled: access until the period end, and how to undo it."""
    _about(subscription, "Your DICOM Portal subscription is cancelled", "billing_canceled")


def cancellation_undone(subscription: Subscription) -> None:
    _about(subscription, "Your DICOM Portal subscription continues", "billing_cancel_undone")


def subscription_ended(subscription: Subscription) -> None:
    """A cancelled subscription's period is over: access stopped, data kept until the deadline."""
    _about(subscription, "Your DICOM Portal subscription has ended", "billing_ended")


def subscription_restored(subscription: Subscription) -> None:
    _about(subscription, "Your DICOM Portal subscription is restored", "billing_restored")


def pause_scheduled(subscription: Subscription) -> None:
    _about(subscription, "Your DICOM Portal subscription will pause", "billing_pause_scheduled")


def pause_ending(subscription: Subscription) -> None:
    """Seven days before a pause ends: it resumes and is charged on that day."""
    _about(
        subscription,
        "Your DICOM Portal pause ends in 7 days",
        "billing_pause_ending",
        amount=format_money(subscription.price.amount_cents, subscription.price.currency),
    )


def refund_issued(note: CreditNote) -> None:
    """A refund went back to the customer's card: how much, for which invoice, and its credit note."""
    invoice = note.invoice
    queue_email(
        invoice.user.email,
        f"Refund of {format_money(note.total_cents, note.currency)} for invoice {invoice.number}",
        "billing_refund",
        user_id=note.user_id,
        note=note,
        invoice=invoice,
        amount=format_money(note.total_cents, note.currency),
        invoices_url=absolute_url("/billing/invoices"),
    )


def _support_address() -> str:
    """Where staff notices go: SUPPORT_EMAIL."""
    return support_address(current_app.config)


DISPUTE_HEADLINES = {
    "warning_needs_response": "Inquiry needs a response",
    "warning_under_review": "Inquiry under review",
    "warning_closed": "Inquiry closed",
    "needs_response": "Dispute needs a response",
    "under_review": "Dispute under review",
    "appeal_needs_response": "Dispute appeal needs a response",
    "appeal_under_review": "Dispute appeal under review",
    "prevented": "Dispute prevented",
    "won": "Dispute won",
    "lost": "Dispute lost",
}


def dispute_changed(dispute: Dispute, invoice: Invoice) -> None:
    """To support, once per change of a dispute's status: what, how much, and the evidence deadline."""
    headline = DISPUTE_HEADLINES.get(dispute.status.value, dispute.status.value)
    amount = format_money(dispute.amount_cents, dispute.currency)
    _to_staff(
        f"{headline}: {amount} on invoice {invoice.number} ({dispute.reason})",
        "billing_dispute",
        dispute=dispute,
        invoice=invoice,
        headline=headline,
        amount=amount,
        lost=format_money(dispute.lost_cents, dispute.currency) if dispute.lost_cents else None,
        customer_email=invoice.user.email,
    )


def early_fraud_warning_changed(warning: EarlyFraudWarning, invoice: Invoice) -> None:
    """To support, when an early fraud warning arrives (and when it is no longer actionable)."""
    amount = format_money(invoice.amount_paid_cents, invoice.currency)
    state = "Early fraud warning" if warning.actionable else "Early fraud warning resolved"
    _to_staff(
        f"{state}: {amount} on invoice {invoice.number} ({warning.fraud_type})",
        "billing_fraud_warning",
        warning=warning,
        invoice=invoice,
        amount=amount,
        customer_email=invoice.user.email,
    )


def _to_staff(subject: str, template: str, **context: object) -> None:
    """One email to the support address (SUPPORT_EMAIL): something staff must know or check."""
    queue_email(_support_address(), subject, template, user_id=None, **context)


def outside_refund_recorded(note: CreditNote) -> None:
    """Staff: a refund made in the Stripe Dashboard now has its credit note in the portal."""
    invoice = note.invoice
    _to_staff(
        f"Refund made in Stripe booked: {format_money(note.total_cents, note.currency)} "
        f"of invoice {invoice.number}",
        "staff_outside_refund",
        note=note,
        invoice=invoice,
        amount=format_money(note.total_cents, note.currency),
        left=format_money(invoice.amount_paid_cents - invoice.amount_refunded_cents, invoice.currency),
    )


def refund_failed(note: CreditNote, failure_reason: str | None) -> None:
    """Staff: Stripe could not return an issued refund to the card; the amount is owed again."""
    invoice = note.invoice
    _to_staff(
        f"Refund failed: {format_money(note.total_cents, note.currency)} of invoice {invoice.number} "
        "was not returned",
        "staff_refund_failed",
        note=note,
        invoice=invoice,
        amount=format_money(note.total_cents, note.currency),
        failure_reason=failure_reason or "not given",
    )


def reconciliation_differences(lines: list[str], days: int) -> None:
    """Staff: the daily comparison of our books with Stripe found differences."""
    _to_staff(
        f"Reconciliation: {len(lines)} difference(s) between the books and Stripe",
        "staff_reconciliation",
        lines=lines,
        days=days,
    )
