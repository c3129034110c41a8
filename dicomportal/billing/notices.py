"""Emails about billing events. Billing services call these; each queues one outbox row that is
committed with the change it reports (see dicomportal.mail)."""

from __future__ import annotations

from flask import current_app

from dicomportal.billing.money import format_money
from dicomportal.mail import absolute_url, queue_email
from dicomportal.models import BillingReason, CreditNote, Invoice, Payment, Subscription


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
        amount=format_money(invoice.amount_due_cents, invoice.currency),
        update_card_url=absolute_url("/billing/card"),
    )


def payment_action_required(invoice: Invoice) -> None:
    """The bank asks the customer to authenticate a renewal payment."""
    queue_email(
        invoice.user.email,
        f"Please confirm your payment for invoice {invoice.number}",
        "billing_action_required",
        user_id=invoice.user_id,
        invoice=invoice,
        amount=format_money(invoice.amount_due_cents, invoice.currency),
        pay_url=absolute_url("/billing/card"),
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


def _to_staff(subject: str, template: str, **context: object) -> None:
    """One email to the support address (SUPPORT_EMAIL): something staff must know or check."""
    to = str(current_app.config.get("SUPPORT_EMAIL") or "support@localhost")
    queue_email(to, subject, template, user_id=None, **context)


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
