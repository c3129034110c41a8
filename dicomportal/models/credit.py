"""Credit notes: the documents of refunds, numbered in their own gapless yearly series."""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dicomportal.extensions import db
from dicomportal.models.billing import Invoice
from dicomportal.models.types import UTCDateTime, utcnow, value_enum


class CreditNoteStatus(enum.StrEnum):
    PENDING = "pending"  # amount reserved on the invoice, Stripe's refund not confirmed yet
    ISSUED = "issued"  # refunded at Stripe; numbered (CN-2026-000001) and final
    FAILED = "failed"  # Stripe refused the refund; the reserved amount was released, no number
    # Issued, then Stripe's refund failed (or was canceled): the document stays as issued, with its
    # number and PDF; its reversal is numbered in its own series (reversal_number) and dated.
    REVERSED = "reversed"


class CreditNote(db.Model):  # type: ignore[name-defined,misc]
    """A refund of (part of) a paid invoice. Amounts are positive: what goes back to the customer."""

    __tablename__ = "credit_notes"

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str | None] = mapped_column(String(30), unique=True)
    invoice_id: Mapped[int] = mapped_column(ForeignKey("invoices.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    status: Mapped[CreditNoteStatus] = mapped_column(value_enum(CreditNoteStatus, 20))
    currency: Mapped[str] = mapped_column(String(3))
    subtotal_cents: Mapped[int] = mapped_column(Integer)
    tax_cents: Mapped[int] = mapped_column(Integer)
    total_cents: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(Text)
    stripe_refund_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    failure_message: Mapped[str | None] = mapped_column(String(500))
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    issued_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reversed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    reversal_number: Mapped[str | None] = mapped_column(String(30), unique=True)

    invoice: Mapped[Invoice] = relationship()

    @property
    def is_issued(self) -> bool:
        return self.status == CreditNoteStatus.ISSUED

    @property
    def is_reversed(self) -> bool:
        """Issued, then its refund failed at Stripe: the money stayed with us."""
        return self.status == CreditNoteStatus.REVERSED
