"""Operational records: the mail outbox, the audit log, job failures and scheduled runs."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import JSON, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from dicomportal.extensions import db
from dicomportal.models.types import UTCDateTime, utcnow


class EmailOutbox(db.Model):  # type: ignore[name-defined,misc]
    """Every email, written in the same transaction as the change it reports, then delivered."""

    __tablename__ = "email_outbox"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"), index=True)
    to_address: Mapped[str] = mapped_column(String(254), index=True)
    subject: Mapped[str] = mapped_column(String(300))
    body_text: Mapped[str] = mapped_column(Text)
    body_html: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime(), index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    last_error: Mapped[str | None] = mapped_column(Text)


class AuditLog(db.Model):  # type: ignore[name-defined,misc]
    """Who did what to which object, and when. Every money-moving action writes one."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, index=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    subject_user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="SET NULL"), index=True
    )
    action: Mapped[str] = mapped_column(String(100), index=True)
    object_type: Mapped[str | None] = mapped_column(String(50))
    object_id: Mapped[int | None] = mapped_column(Integer)
    details: Mapped[dict[str, object]] = mapped_column(JSON, default=dict)


class JobItemFailure(db.Model):  # type: ignore[name-defined,misc]
    """An item a scheduled job failed on unexpectedly: skipped until ``retry_at`` (exponential
    backoff), so one bad item neither stops the others nor floods the log on every pass."""

    __tablename__ = "job_item_failures"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    item_id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    failures: Mapped[int] = mapped_column(Integer, default=1)
    retry_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)
    last_error: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Installation(db.Model):  # type: ignore[name-defined,misc]
    """This installation's identity: one row, made at first need and kept with the data.

    ``key`` prefixes every Idempotency-Key sent to Stripe (docs/payments.md), so two databases
    sharing one Stripe account (staging and production, the demo, a copy) never send the same
    key for different requests, whereas Stripe keeps keys for 24 hours per account.
    """

    __tablename__ = "installation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)


class ScheduledRun(db.Model):  # type: ignore[name-defined,misc]
    """When a job that runs on a schedule (not every pass) last ran: the worker's passes every few
    seconds start it only once its interval is over, and only one worker wins each start."""

    __tablename__ = "scheduled_runs"

    job: Mapped[str] = mapped_column(String(64), primary_key=True)
    last_run_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
