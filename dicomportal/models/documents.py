"""Printed documents as stored: a finalized invoice's or credit note's PDF, kept byte for byte."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from dicomportal.extensions import db
from dicomportal.models.types import UTCDateTime, utcnow


class StoredDocument(db.Model):  # type: ignore[name-defined,misc]
    """One rendered PDF. ``key`` names what it prints (``invoice:42:paid``, ``credit_note:7``):
    rendered once, then served again as stored, whatever the customer's details become."""

    __tablename__ = "stored_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    key: Mapped[str] = mapped_column(String(100), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    filename: Mapped[str] = mapped_column(String(100))
    sha256: Mapped[str] = mapped_column(String(64))
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
