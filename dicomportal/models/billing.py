"""Billing records we own: subscriptions, invoices and their lines, payments, saved cards, Stripe events.

Stripe only moves the money (docs/architecture.md#1-the-one-big-decision); these tables are the truth.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dicomportal.extensions import db
from dicomportal.models.catalog import Price
from dicomportal.models.types import UTCDateTime, utcnow, value_enum
from dicomportal.models.user import User


class SubscriptionStatus(enum.StrEnum):
    INCOMPLETE = "incomplete"  # first payment not (yet) made, e.g. awaiting 3-D Secure
    ACTIVE = "active"
    PAST_DUE = "past_due"  # a renewal failed; dunning retries are scheduled
    PAUSED = "paused"
    ENDED = "ended"


class Subscription(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "subscriptions"
    __table_args__ = (
        # One subscription that has not ended per customer: double-clicked "Subscribe" buttons and
        # concurrent requests cannot create a second one.
        Index(
            "uq_subscriptions_one_live_per_user",
            "user_id",
            unique=True,
            sqlite_where=text("status != 'ended'"),
            postgresql_where=text("status != 'ended'"),
        ),
        # The renewal worker's query: active subscriptions by period end (ended history is not in it).
        Index(
            "ix_subscriptions_active_period_end",
            "current_period_end",
            "id",
            sqlite_where=text("status = 'active'"),
            postgresql_where=text("status = 'active'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    price_id: Mapped[int] = mapped_column(ForeignKey("prices.id"))
    status: Mapped[SubscriptionStatus] = mapped_column(value_enum(SubscriptionStatus, 30))
    current_period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    current_period_end: Mapped[datetime] = mapped_column(UTCDateTime())
    # Periods are counted from this moment so monthly renewals keep the customer's billing day.
    billing_anchor: Mapped[datetime] = mapped_column(UTCDateTime())
    cancel_at_period_end: Mapped[bool] = mapped_column(Boolean, default=False)
    canceled_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    cancel_reason: Mapped[str | None] = mapped_column(String(500))
    ended_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_reason: Mapped[str | None] = mapped_column(String(50))
    restore_deadline: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pause_starts_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    pause_ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the "your pause ends in 7 days" email was queued (it is sent once per pause).
    pause_reminder_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # When the purge job deleted the customer's data after the restore window (it runs once).
    data_purged_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    scheduled_price_id: Mapped[int | None] = mapped_column(ForeignKey("prices.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    # A renewal worker's claim: until then other workers leave the row to it (they divide the due
    # subscriptions instead of all reading the same ones).
    renewal_claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Optimistic concurrency: every ORM update says "WHERE version = <the one I read>", so two
    # transactions that both read the row (a renewal on two workers, a webhook racing a page)
    # cannot both apply their change; the loser gets StaleDataError instead of a double effect.
    version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")

    user: Mapped[User] = relationship()
    price: Mapped[Price] = relationship(foreign_keys=[price_id])
    scheduled_price: Mapped[Price | None] = relationship(foreign_keys=[scheduled_price_id])

    __mapper_args__ = {"version_id_col": version}

    # State questions, asked by services, views and templates instead of comparing statuses
    # (as Laravel Cashier's valid(), onGracePeriod()).

    @property
    def is_live(self) -> bool:
        """Not ended: the customer's current subscription (at most one per customer)."""
        return self.status != SubscriptionStatus.ENDED

    @property
    def has_ended(self) -> bool:
        return self.status == SubscriptionStatus.ENDED

    @property
    def is_incomplete(self) -> bool:
        """The first payment has not been made yet (e.g. waiting for 3-D Secure)."""
        return self.status == SubscriptionStatus.INCOMPLETE

    @property
    def is_active(self) -> bool:
        return self.status == SubscriptionStatus.ACTIVE

    @property
    def is_past_due(self) -> bool:
        """A renewal failed and dunning is retrying it; access continues meanwhile."""
        return self.status == SubscriptionStatus.PAST_DUE

    @property
    def is_paused(self) -> bool:
        return self.status == SubscriptionStatus.PAUSED

    @property
    def grants_access(self) -> bool:
        """The customer may use what the plan includes (fully, or view-only while paused)."""
        return self.is_active or self.is_past_due or self.is_paused

    @property
    def ends_at_period_end(self) -> bool:
        """Cancelled: access continues until the paid period ends, then the subscription ends."""
        return self.cancel_at_period_end and self.is_live

    def is_due_for_renewal(self, at: datetime) -> bool:
        """Active and its paid period is over at ``at``."""
        return self.is_active and self.current_period_end <= at


class InvoiceStatus(enum.StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    PAID = "paid"
    VOID = "void"
    UNCOLLECTIBLE = "uncollectible"
    REFUNDED = "refunded"  # paid, then refunded in full (credit notes say how)


class BillingReason(enum.StrEnum):
    SUBSCRIPTION_CREATE = "subscription_create"
    SUBSCRIPTION_CYCLE = "subscription_cycle"
    SUBSCRIPTION_UPDATE = "subscription_update"
    MANUAL = "manual"


class Invoice(db.Model):  # type: ignore[name-defined,misc]
    """A bill. Numbered when finalized (gapless per year); immutable from then on."""

    __tablename__ = "invoices"
    __table_args__ = (
        # A subscription is billed once per period and reason: two workers renewing the same
        # subscription cannot both create an invoice.
        UniqueConstraint("subscription_id", "period_start", "billing_reason", name="uq_invoices_period"),
        # A subscription's invoices in one state (its open ones, on every dashboard view).
        Index("ix_invoices_subscription_status", "subscription_id", "status"),
        # A customer's invoices newest first (the dashboard's five, the history's pages).
        Index("ix_invoices_user_finalized", "user_id", "finalized_at", "id"),
        # The invoice history filtered by status, newest first, a page at a time.
        Index("ix_invoices_user_status_finalized", "user_id", "status", "finalized_at", "id"),
        # Open invoices: what a customer owes, and dunning's next retries.
        Index(
            "ix_invoices_open_user",
            "user_id",
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
        Index(
            "ix_invoices_open_next_attempt",
            "next_attempt_at",
            "id",
            sqlite_where=text("status = 'open'"),
            postgresql_where=text("status = 'open'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(30), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    subscription_id: Mapped[int | None] = mapped_column(ForeignKey("subscriptions.id"))
    status: Mapped[InvoiceStatus] = mapped_column(value_enum(InvoiceStatus, 30))
    billing_reason: Mapped[BillingReason] = mapped_column(value_enum(BillingReason, 30))
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    subtotal_cents: Mapped[int] = mapped_column(Integer, default=0)
    tax_cents: Mapped[int] = mapped_column(Integer, default=0)
    total_cents: Mapped[int] = mapped_column(Integer, default=0)
    amount_paid_cents: Mapped[int] = mapped_column(Integer, default=0)
    # Refunded so far (credit notes issued or under way); never more than amount_paid_cents.
    amount_refunded_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # The status of the dispute of this invoice's payment (Stripe's word, see models/disputes.py),
    # copied here so that listing invoices needs no join; and what a lost dispute cost us.
    dispute_status: Mapped[str | None] = mapped_column(String(30))
    amount_lost_cents: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    tax_rate_bp: Mapped[int] = mapped_column(Integer, default=0)  # basis points: 1900 = 19%
    tax_note: Mapped[str | None] = mapped_column(String(300))
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # What the customer's billing details were when the invoice was finalized.
    billing_name: Mapped[str | None] = mapped_column(String(200))
    billing_company: Mapped[str | None] = mapped_column(String(200))
    billing_address: Mapped[str | None] = mapped_column(Text)
    billing_country: Mapped[str | None] = mapped_column(String(2))
    billing_tax_id: Mapped[str | None] = mapped_column(String(50))
    billing_email: Mapped[str | None] = mapped_column(String(254))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    finalized_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    voided_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Dunning: how many charge attempts failed and when the next one is due.
    attempt_count: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    user: Mapped[User] = relationship()
    subscription: Mapped[Subscription | None] = relationship()
    lines: Mapped[list[InvoiceLine]] = relationship(
        back_populates="invoice", order_by="InvoiceLine.id", cascade="all, delete-orphan"
    )
    payments: Mapped[list[Payment]] = relationship(back_populates="invoice", order_by="Payment.attempt")

    @property
    def amount_due_cents(self) -> int:
        return self.total_cents - self.amount_paid_cents

    @property
    def refundable_cents(self) -> int:
        """What may still be refunded: paid and not refunded yet."""
        return self.amount_paid_cents - self.amount_refunded_cents

    @property
    def is_partially_refunded(self) -> bool:
        return self.status == InvoiceStatus.PAID and self.amount_refunded_cents > 0

    @property
    def is_open(self) -> bool:
        return self.status == InvoiceStatus.OPEN

    @property
    def is_disputed(self) -> bool:
        """The customer's bank disputes the payment and has not decided yet (service continues)."""
        return self.dispute_status in DISPUTE_OPEN_VALUES

    @property
    def has_lost_dispute(self) -> bool:
        """The bank took the payment back: ``amount_lost_cents`` is what it cost us."""
        return self.dispute_status == "lost"

    @property
    def refund_blocked_by_dispute(self) -> bool:
        """Stripe refuses refunds of a charge under dispute or charged back ("charge_disputed")."""
        return self.is_disputed or self.has_lost_dispute


# Stripe's open dispute statuses (DisputeStatus in models/disputes.py, which imports this module).
DISPUTE_OPEN_VALUES = frozenset(
    {
        "warning_needs_response",
        "warning_under_review",
        "needs_response",
        "under_review",
        "appeal_needs_response",
        "appeal_under_review",
    }
)


class LineKind(enum.StrEnum):
    PLAN = "plan"
    PRORATION = "proration"
    ADDON = "addon"
    OVERAGE = "overage"
    CREDIT = "credit"


class InvoiceLine(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "invoice_lines"

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    kind: Mapped[LineKind] = mapped_column(value_enum(LineKind, 30))
    description: Mapped[str] = mapped_column(String(300))
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_amount_cents: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(Integer)
    price_id: Mapped[int | None] = mapped_column(ForeignKey("prices.id"))
    period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())
    period_end: Mapped[datetime | None] = mapped_column(UTCDateTime())

    invoice: Mapped[Invoice] = relationship(back_populates="lines")


class InvoiceNumberSeries(db.Model):  # type: ignore[name-defined,misc]
    """The next number of one yearly series (``DP-2026-``); incremented under a row lock."""

    __tablename__ = "invoice_number_series"

    prefix: Mapped[str] = mapped_column(String(20), primary_key=True)
    next_number: Mapped[int] = mapped_column(Integer, default=1)


class PaymentStatus(enum.StrEnum):
    PENDING = "pending"  # row written, PaymentIntent maybe not created or not confirmed yet
    REQUIRES_ACTION = "requires_action"  # the customer must authenticate (3-D Secure)
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELED = "canceled"


IN_FLIGHT = (PaymentStatus.PENDING.value, PaymentStatus.REQUIRES_ACTION.value)


class Payment(db.Model):  # type: ignore[name-defined,misc]
    """One attempt to collect an invoice (docs/architecture.md#6-charging-safely)."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("invoice_id", "attempt", name="uq_payments_invoice_attempt"),
        # At most one attempt in flight per invoice: a second concurrent charge cannot start.
        Index(
            "uq_payments_one_in_flight_per_invoice",
            "invoice_id",
            unique=True,
            sqlite_where=text("status IN ('pending', 'requires_action')"),
            postgresql_where=text("status IN ('pending', 'requires_action')"),
        ),
        # Reconcile's query: pending payments, oldest first.
        Index(
            "ix_payments_pending_created",
            "created_at",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    attempt: Mapped[int] = mapped_column(Integer)
    status: Mapped[PaymentStatus] = mapped_column(value_enum(PaymentStatus, 30))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    stripe_payment_method_id: Mapped[str | None] = mapped_column(String(255))
    client_secret: Mapped[str | None] = mapped_column(String(255))
    failure_code: Mapped[str | None] = mapped_column(String(100))
    failure_message: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    invoice: Mapped[Invoice] = relationship(back_populates="payments")


class PaymentMethod(db.Model):  # type: ignore[name-defined,misc]
    """Our mirror of a card saved at Stripe: brand, last 4 and expiry only, never the number."""

    __tablename__ = "payment_methods"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    stripe_payment_method_id: Mapped[str] = mapped_column(String(255), unique=True)
    brand: Mapped[str] = mapped_column(String(30))
    last4: Mapped[str] = mapped_column(String(4))
    exp_month: Mapped[int] = mapped_column(Integer)
    exp_year: Mapped[int] = mapped_column(Integer)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    detached_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class StripeEvent(db.Model):  # type: ignore[name-defined,misc]
    """Every verified webhook event, stored first so a replay is recognised and ignored."""

    __tablename__ = "stripe_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_event_id: Mapped[str] = mapped_column(String(255), unique=True)
    type: Mapped[str] = mapped_column(String(100), index=True)
    # The body exactly as Stripe signed it (never re-serialised: Stripe objects carry Decimals).
    payload: Mapped[str] = mapped_column(Text)
    received_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
