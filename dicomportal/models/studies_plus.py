"""What a customer does with stored studies beyond keeping them: share links, the processing-credit
ledger and the overage consent, and the extra-storage add-ons on a subscription.

Why a ledger with a sequence number: a credit is spent by inserting the next ``seq`` of its kind
for the period, and ``(subscription, period, kind, seq)`` is unique, so two requests spending the
last credit at once cannot both succeed (on SQLite and PostgreSQL alike): the loser's insert fails
and it reads the balance again.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Index, Integer, String, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dicomportal.extensions import db
from dicomportal.models.billing import Invoice
from dicomportal.models.catalog import AddOn
from dicomportal.models.types import UTCDateTime, utcnow, value_enum


class ShareLink(db.Model):  # type: ignore[name-defined,misc]
    """A read-only link to one study; whoever has the token may view it until it expires or is revoked."""

    __tablename__ = "study_shares"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    open_count: Mapped[int] = mapped_column(Integer, default=0)
    last_opened_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    def is_open_at(self, at: datetime) -> bool:
        """Neither revoked nor expired at ``at`` (the study's own state is checked separately)."""
        return self.revoked_at is None and at < self.expires_at


class CreditKind(enum.StrEnum):
    GRANT = "grant"  # the plan's credits for a period
    USE = "use"  # one included credit spent
    EXTRA = "extra"  # one credit beyond the plan, under the customer's overage allowance


class CreditEntry(db.Model):  # type: ignore[name-defined,misc]
    """One line of the processing-credit ledger."""

    __tablename__ = "credit_entries"
    __table_args__ = (
        UniqueConstraint("subscription_id", "period_start", "kind", "seq", name="uq_credit_entries_seq"),
        Index("ix_credit_entries_user_created", "user_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    period_start: Mapped[datetime] = mapped_column(UTCDateTime())
    kind: Mapped[CreditKind] = mapped_column(value_enum(CreditKind))
    seq: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer, default=1)
    unit_amount_cents: Mapped[int] = mapped_column(Integer, default=0)  # EXTRA: the catalog price then
    action: Mapped[str] = mapped_column(String(20), default="")  # "3d", "stl"
    study_id: Mapped[int | None] = mapped_column(ForeignKey("studies.id", ondelete="SET NULL"))
    series_uid: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class OverageAllowance(db.Model):  # type: ignore[name-defined,misc]
    """The customer's consent to extra credits beyond the plan, up to a monthly cap, and when
    they were last told their credits ran out (one notice per period)."""

    __tablename__ = "overage_allowances"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(
        ForeignKey("subscriptions.id", ondelete="CASCADE"), unique=True
    )
    cap_cents: Mapped[int] = mapped_column(Integer, default=0)  # 0: no consent
    unit_amount_cents: Mapped[int] = mapped_column(Integer, default=0)  # the price they accepted
    accepted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    notified_period_start: Mapped[datetime | None] = mapped_column(UTCDateTime())


class SubscriptionAddOn(db.Model):  # type: ignore[name-defined,misc]
    """An add-on on a subscription: in force from ``added_at`` until ``ends_at`` (set to the period
    end when the customer removes it; None while it renews)."""

    __tablename__ = "subscription_addons"
    __table_args__ = (
        # One renewing row per add-on: a double-clicked "Add" charges once.
        Index(
            "uq_subscription_addons_renewing",
            "subscription_id",
            "addon_id",
            unique=True,
            sqlite_where=text("ends_at IS NULL"),
            postgresql_where=text("ends_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscription_id: Mapped[int] = mapped_column(ForeignKey("subscriptions.id", ondelete="CASCADE"))
    addon_id: Mapped[int] = mapped_column(ForeignKey("addons.id"))
    added_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ends_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    invoice_id: Mapped[int | None] = mapped_column(ForeignKey("invoices.id", ondelete="SET NULL"))

    addon: Mapped[AddOn] = relationship()
    invoice: Mapped[Invoice | None] = relationship()

    def in_force_at(self, at: datetime) -> bool:
        """Counted in the quota at ``at``."""
        return self.added_at <= at and (self.ends_at is None or at < self.ends_at)
