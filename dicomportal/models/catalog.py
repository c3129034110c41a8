"""The catalog: plans, their prices, add-ons and overage rates.

Prices are never edited in place: a changed amount is a new row and the old one is deactivated,
so subscriptions keep the price they bought.
"""

from __future__ import annotations

import enum
from datetime import datetime

from sqlalchemy import JSON, Boolean, ForeignKey, Integer, String
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dicomportal.extensions import db
from dicomportal.models.types import UTCDateTime, utcnow, value_enum


class Interval(enum.StrEnum):
    MONTH = "month"
    YEAR = "year"


class Plan(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "plans"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(50), unique=True)
    name: Mapped[str] = mapped_column(String(100))
    audience: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(String(500), default="")
    rank: Mapped[int] = mapped_column(Integer, unique=True)
    storage_gb: Mapped[int] = mapped_column(Integer)
    monthly_credits: Mapped[int] = mapped_column(Integer)
    features: Mapped[list[str]] = mapped_column(JSON, default=list)
    # The viewer tools the plan includes (codes from dicomportal/studies/tools.py).
    tools: Mapped[list[str]] = mapped_column(JSON, default=list)
    highlighted: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)

    prices: Mapped[list[Price]] = relationship(back_populates="plan", order_by="Price.id")

    def active_price(self, interval: Interval | str) -> Price | None:
        """The price new subscribers pay for ``interval``, if the plan is sold that way."""
        for price in self.prices:
            if price.active and price.interval == Interval(interval):
                return price
        return None


class Price(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "prices"

    id: Mapped[int] = mapped_column(primary_key=True)
    plan_id: Mapped[int] = mapped_column(ForeignKey("plans.id"), index=True)
    interval: Mapped[Interval] = mapped_column(value_enum(Interval))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    plan: Mapped[Plan] = relationship(back_populates="prices")


class AddOn(db.Model):  # type: ignore[name-defined,misc]
    """Something bought on top of a plan, e.g. 100 GB of extra storage per month."""

    __tablename__ = "addons"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(50), index=True)
    name: Mapped[str] = mapped_column(String(100))
    description: Mapped[str] = mapped_column(String(500), default="")
    interval: Mapped[Interval] = mapped_column(value_enum(Interval))
    amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    storage_gb: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class OverageRate(db.Model):  # type: ignore[name-defined,misc]
    """The price of one unit used beyond the plan, e.g. one processing credit."""

    __tablename__ = "overage_rates"

    id: Mapped[int] = mapped_column(primary_key=True)
    code: Mapped[str] = mapped_column(String(50), index=True)
    name: Mapped[str] = mapped_column(String(100))
    unit: Mapped[str] = mapped_column(String(50))
    unit_amount_cents: Mapped[int] = mapped_column(Integer)
    currency: Mapped[str] = mapped_column(String(3), default="USD")
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CatalogRevision(db.Model):  # type: ignore[name-defined,misc]
    """One row per change to the catalog (``dicomportal seed`` adds it with the change): its
    highest id is the catalog's version, which tells every process when its cached pricing
    page is out of date."""

    __tablename__ = "catalog_revisions"

    id: Mapped[int] = mapped_column(primary_key=True)
    changes: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
