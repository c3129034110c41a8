"""Read-only billing figures for pages: the account dashboard, the subscribe steps and the card page.

Everything here only reads, through the billing services where they exist; amounts use the same
tax rule and rounding as invoicing, so a figure shown before paying is the figure charged.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import selectinload

from dicomportal import clock
from dicomportal.billing import addons, collection, subscriptions
from dicomportal.billing.entitlements import Entitlements, entitlements_of
from dicomportal.billing.invoicing import invoices_for
from dicomportal.billing.periods import period_boundary
from dicomportal.billing.proration import apply_rate
from dicomportal.billing.tax import tax_for
from dicomportal.extensions import db
from dicomportal.models import (
    BillingProfile,
    BillingReason,
    Invoice,
    InvoiceStatus,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Price,
    Subscription,
    User,
)

RECENT_INVOICES = 5


@dataclass(frozen=True)
class Charge:
    """An amount the customer will pay: the plan price, the tax on it, and when."""

    subtotal_cents: int
    tax_cents: int
    tax_rate_bp: int
    currency: str
    on: datetime | None = None
    tax_note: str | None = None  # the reverse-charge mention, when it applies

    @property
    def reverse_charge(self) -> bool:
        return self.tax_note is not None

    @property
    def total_cents(self) -> int:
        return self.subtotal_cents + self.tax_cents


@dataclass(frozen=True)
class AccountSummary:
    """What the dashboard shows about the customer's plan, card and invoices."""

    subscription: Subscription | None
    card: PaymentMethod | None
    invoices: list[Invoice]
    next_charge: Charge | None
    awaiting_authentication: Payment | None
    amount_due_cents: int
    access: Entitlements


def price_charge(price: Price, profile: BillingProfile | None, on: datetime | None = None) -> Charge:
    """What one period of ``price`` costs this customer, tax included (the invoicing rule)."""
    tax = tax_for(profile, current_app.config)
    return Charge(
        price.amount_cents,
        apply_rate(price.amount_cents, tax.rate_bp),
        tax.rate_bp,
        price.currency,
        on,
        tax.note,
    )


def first_period_end(price: Price) -> datetime:
    """When a subscription started now would first renew."""
    return period_boundary(clock.now(), price.interval, 1)


def next_charge(
    subscription: Subscription, profile: BillingProfile | None, open_invoices: list[Invoice] | None = None
) -> Charge | None:
    """The next automatic charge, or None when none is coming (ending, ended, not started, or a
    payment waiting for the customer's bank, which the dashboard's banner asks them to confirm).

    ``open_invoices``: the customer's open invoices when the caller has them already."""
    if subscription.is_past_due:
        owed = [i for i in _open(subscription.user_id, open_invoices) if i.subscription_id == subscription.id]
        invoice = max(owed, key=lambda i: i.id, default=None)
        if invoice is None or invoice.next_attempt_at is None:
            return None
        if any(p.status == PaymentStatus.REQUIRES_ACTION for p in invoice.payments):
            return None  # waiting for the customer's bank: nothing is charged without them
        return Charge(invoice.amount_due_cents, 0, 0, invoice.currency, invoice.next_attempt_at)
    if not (subscription.is_active or subscription.is_paused) or subscription.ends_at_period_end:
        return None
    price = subscription.scheduled_price or subscription.price
    on = subscription.pause_ends_at if subscription.pause_starts_at else subscription.current_period_end
    charge = price_charge(price, profile, on)
    extra = addons.renewing_cents(subscription, price.interval)  # the storage add-on renews with it
    if not extra:
        return charge
    subtotal = charge.subtotal_cents + extra
    return Charge(
        subtotal,
        apply_rate(subtotal, charge.tax_rate_bp),
        charge.tax_rate_bp,
        charge.currency,
        on,
    )


_OPEN = (
    select(Invoice)
    .where(Invoice.user_id == bindparam("user_id"), Invoice.status == InvoiceStatus.OPEN)
    .options(selectinload(Invoice.payments))
    .order_by(Invoice.id)
)


def open_invoices(user_id: int) -> list[Invoice]:
    """The customer's open (unpaid) invoices with their payment attempts: one query, plus one for
    the attempts only when there is an open invoice at all."""
    return list(db.session.scalars(_OPEN, {"user_id": user_id}))


def _open(user_id: int, known: list[Invoice] | None) -> list[Invoice]:
    return known if known is not None else open_invoices(user_id)


def shown_subscription(user_id: int) -> Subscription | None:
    """The subscription the dashboard talks about; one whose first payment failed never started."""
    subscription = subscriptions.latest_subscription(user_id)
    if subscription is not None and subscription.ended_reason == "first_payment_failed":
        return None
    return subscription


def awaiting_authentication(subscription_id: int) -> Payment | None:
    """A payment of this subscription waiting for the customer's 3-D Secure confirmation."""
    query = (
        select(Payment)
        .join(Invoice)
        .where(
            Invoice.subscription_id == subscription_id,
            Invoice.status == InvoiceStatus.OPEN,
            Payment.status == PaymentStatus.REQUIRES_ACTION,
        )
        .order_by(Payment.id.desc())
    )
    return db.session.scalars(query).first()


def amount_due_cents(user_id: int) -> int:
    """The total of the customer's open invoices ("update card and pay now" pays this)."""
    query = select(func.coalesce(func.sum(Invoice.total_cents - Invoice.amount_paid_cents), 0)).where(
        Invoice.user_id == user_id, Invoice.status == InvoiceStatus.OPEN
    )
    return int(db.session.scalar(query) or 0)


def first_invoice(subscription: Subscription) -> Invoice | None:
    """The invoice that started ``subscription``."""
    query = select(Invoice).where(
        Invoice.subscription_id == subscription.id,
        Invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE,
    )
    return db.session.scalar(query)


def own_payment(user_id: int, payment_id: int) -> Payment | None:
    """One of the customer's payments; someone else's is as good as missing."""
    payment = db.session.get(Payment, payment_id)
    return payment if payment is not None and payment.invoice.user_id == user_id else None


def account_summary(user: User) -> AccountSummary:
    """Everything the account dashboard shows about billing, in four queries however long the
    customer's history (the subscription with its plans, the card, the last invoices, the open
    ones), plus one for the open invoices' payments when any is open."""
    subscription = shown_subscription(user.id)
    owed = open_invoices(user.id)
    waiting = [
        p
        for i in owed
        if subscription is not None and i.subscription_id == subscription.id
        for p in i.payments
        if p.status == PaymentStatus.REQUIRES_ACTION
    ]
    return AccountSummary(
        subscription=subscription,
        card=collection.default_card(user.id),
        invoices=invoices_for(user.id, limit=RECENT_INVOICES),
        next_charge=next_charge(subscription, user.billing_profile, owed) if subscription else None,
        awaiting_authentication=max(waiting, key=lambda p: p.id, default=None),
        amount_due_cents=sum(i.amount_due_cents for i in owed),
        access=entitlements_of(subscription),
    )
