"""Disputes (chargebacks and inquiries) and Radar's early fraud warnings: our record of what Stripe
told us about a payment of ours, kept by Stripe id so that replayed and out-of-order events converge."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import Boolean, ForeignKey, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dicomportal.extensions import db
from dicomportal.models.billing import DISPUTE_OPEN_VALUES, Invoice, Payment
from dicomportal.models.types import UTCDateTime, utcnow, value_enum


class DisputeStatus(enum.StrEnum):
    """Stripe's dispute statuses (API 2026-10-28). ``warning_*`` is an inquiry (no money moved
    yet); ``appeal_*`` is our appeal of a decision, still undecided; ``prevented`` was resolved
    before it became a dispute."""

    WARNING_NEEDS_RESPONSE = "warning_needs_response"
    WARNING_UNDER_REVIEW = "warning_under_review"
    WARNING_CLOSED = "warning_closed"
    NEEDS_RESPONSE = "needs_response"
    UNDER_REVIEW = "under_review"
    APPEAL_NEEDS_RESPONSE = "appeal_needs_response"
    APPEAL_UNDER_REVIEW = "appeal_under_review"
    PREVENTED = "prevented"
    WON = "won"
    LOST = "lost"


# One list of the open statuses (the Invoice copy of a dispute's status reads it too).
OPEN_DISPUTE_STATUSES = frozenset(DisputeStatus(value) for value in DISPUTE_OPEN_VALUES)

_OPEN_SQL = (
    "status IN ('warning_needs_response', 'warning_under_review', 'needs_response', 'under_review', "
    "'appeal_needs_response', 'appeal_under_review')"
)


class Dispute(db.Model):  # type: ignore[name-defined,misc]
    """A dispute of one of our charges, as Stripe last reported it."""

    __tablename__ = "disputes"
    __table_args__ = (
        # The support list: open disputes by evidence deadline.
        Index(
            "ix_disputes_open_due",
            "evidence_due_by",
            "id",
            sqlite_where=text(_OPEN_SQL),
            postgresql_where=text(_OPEN_SQL),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_dispute_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_charge_id: Mapped[str] = mapped_column(String(255), index=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"), index=True)
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"), index=True)
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3))
    reason: Mapped[str] = mapped_column(String(50))
    status: Mapped[DisputeStatus] = mapped_column(value_enum(DisputeStatus, 30))
    evidence_due_by: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # From the dispute's balance transactions: what Stripe took from our balance, the dispute fee
    # it charged, and what it gave back.
    funds_withdrawn_cents: Mapped[int] = mapped_column(Integer, default=0)
    fee_cents: Mapped[int] = mapped_column(Integer, default=0)
    funds_reinstated_cents: Mapped[int] = mapped_column(Integer, default=0)
    # The status support was last emailed about: one email per change of status, however many
    # times Stripe delivers the events.
    notified_status: Mapped[str | None] = mapped_column(String(30))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)  # Stripe's `created`
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)
    closed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    payment: Mapped[Payment | None] = relationship()
    invoice: Mapped[Invoice | None] = relationship()

    @property
    def is_open(self) -> bool:
        """Stripe (or the bank) has not decided yet: evidence may still be due."""
        return self.status in OPEN_DISPUTE_STATUSES

    @property
    def lost_cents(self) -> int:
        """Money this dispute cost us: the disputed amount plus Stripe's fee, once lost."""
        if self.status != DisputeStatus.LOST:
            return 0
        return max(self.amount_cents, self.funds_withdrawn_cents) + self.fee_cents


class EarlyFraudWarning(db.Model):  # type: ignore[name-defined,misc]
    """A card issuer's early warning that one of our charges may be fraudulent (Stripe Radar)."""

    __tablename__ = "early_fraud_warnings"

    id: Mapped[int] = mapped_column(primary_key=True)
    stripe_id: Mapped[str] = mapped_column(String(255), unique=True)
    stripe_charge_id: Mapped[str] = mapped_column(String(255), index=True)
    stripe_payment_intent_id: Mapped[str | None] = mapped_column(String(255))
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"), index=True)
    fraud_type: Mapped[str] = mapped_column(String(50))
    # Stripe's: no dispute yet and not fully refunded, so refunding now can prevent a dispute.
    actionable: Mapped[bool] = mapped_column(Boolean)
    notified_status: Mapped[str | None] = mapped_column(String(30))
    # Set when support answered the warning with a refund (the credit note documents it).
    credit_note_id: Mapped[int | None] = mapped_column(ForeignKey("credit_notes.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)  # Stripe's `created`
    recorded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    payment: Mapped[Payment | None] = relationship()

    @property
    def state(self) -> str:
        """``actionable`` or ``resolved`` (disputed or refunded): what support is told about."""
        return "actionable" if self.actionable else "resolved"
