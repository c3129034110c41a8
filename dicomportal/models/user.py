"""Accounts: users and their billing profile."""

from __future__ import annotations

import enum
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, false
from sqlalchemy.orm import Mapped, mapped_column, relationship
from werkzeug.security import check_password_hash, generate_password_hash

from dicomportal.extensions import db
from dicomportal.models.types import UTCDateTime, utcnow, value_enum


class Role(enum.StrEnum):
    CUSTOMER = "customer"
    SUPPORT = "support"
    ADMIN = "admin"


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "users"
    __allow_unmapped__ = True  # for ``session_token``, which is not a column

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True, index=True)
    name: Mapped[str] = mapped_column(String(200))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[Role] = mapped_column(
        value_enum(Role),
        default=Role.CUSTOMER,
    )
    locale: Mapped[str] = mapped_column(String(10), default="en")
    stripe_customer_id: Mapped[str | None] = mapped_column(String(255), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    password_changed_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # The SetupIntent the card form last offered, reused while it is still open (billing/cards.py).
    card_setup_intent_id: Mapped[str | None] = mapped_column(String(255))
    card_setup_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    # The token of the login session this object was loaded for or logged in with (not stored:
    # the database keeps only its digest, in LoginSession).
    session_token: str | None = None

    billing_profile: Mapped[BillingProfile | None] = relationship(
        back_populates="user", uselist=False, cascade="all, delete-orphan"
    )

    def set_password(self, password: str) -> None:
        """Store a salted scrypt hash (never the password)."""
        self.password_hash = generate_password_hash(password, method="scrypt")

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    def get_id(self) -> str:
        """What Flask-Login puts in the session and remember-me cookies: the token of this login's
        server-side session (``accounts.start_session``), never the user id, so a cookie stops
        working once its session is ended (logout, password change) or expired."""
        if not self.session_token:
            raise RuntimeError("log in through accounts.start_session, which opens the session")
        return self.session_token

    @property
    def is_staff(self) -> bool:
        return self.role in (Role.SUPPORT, Role.ADMIN)

    def __repr__(self) -> str:
        return f"<User {self.id} {self.email}>"


class BillingProfile(db.Model):  # type: ignore[name-defined,misc]
    """Who the invoices are addressed to; copied onto each invoice when it is finalized."""

    __tablename__ = "billing_profiles"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    company: Mapped[str | None] = mapped_column(String(200))
    address_line1: Mapped[str] = mapped_column(String(200))
    address_line2: Mapped[str | None] = mapped_column(String(200))
    city: Mapped[str] = mapped_column(String(100))
    postal_code: Mapped[str | None] = mapped_column(String(20))
    state: Mapped[str | None] = mapped_column(String(100))
    country: Mapped[str] = mapped_column(String(2))
    tax_id: Mapped[str | None] = mapped_column(String(50))
    tax_id_type: Mapped[str | None] = mapped_column(String(20))
    tax_id_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    # Bumped whenever the tax ID changes: part of the idempotency key of its creation at Stripe, so
    # a number set again later is created again rather than answered with the first (deleted) one.
    tax_id_revision: Mapped[int] = mapped_column(default=0, server_default="0")
    # The Stripe customer mirrors these details (company, tax ID): the tax ID's id there, whether a
    # saved change still has to be copied (the worker retries it), and why the last copy failed.
    stripe_tax_id: Mapped[str | None] = mapped_column(String(50))
    stripe_mirror_due: Mapped[bool] = mapped_column(default=False, server_default=false(), index=True)
    stripe_mirror_error: Mapped[str | None] = mapped_column(String(500))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    user: Mapped[User] = relationship(back_populates="billing_profile")


class LoginSession(db.Model):  # type: ignore[name-defined,misc]
    """One logged-in browser. Its cookies carry a random token; only the token's SHA-256 is kept
    here, so the table cannot be replayed as cookies. Deleting the row logs that browser out."""

    __tablename__ = "login_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_digest: Mapped[str] = mapped_column(String(64), unique=True)
    remember: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime(), index=True)

    user: Mapped[User] = relationship()
