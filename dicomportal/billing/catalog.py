"""The plan catalog: seeding it from the package's data file, and the figures the pricing page shows."""

from __future__ import annotations

import time
import tomllib
from dataclasses import dataclass
from importlib import resources
from typing import Any

from flask import current_app
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from dicomportal.billing import proration
from dicomportal.extensions import db
from dicomportal.models import AddOn, CatalogRevision, Interval, OverageRate, Plan, Price

PLAN_FIELDS = (
    "name",
    "audience",
    "description",
    "rank",
    "storage_gb",
    "monthly_credits",
    "features",
    "tools",
)


def load_catalog_file() -> dict[str, Any]:
    """The catalog data shipped in the package (``billing/catalog.toml``)."""
    text = resources.files("dicomportal.billing").joinpath("catalog.toml").read_text("utf-8")
    return tomllib.loads(text)


def seed_catalog(data: dict[str, Any] | None = None) -> int:
    """Make the database catalog match ``data`` (default: the package file) and commit.

    Idempotent: a second run changes nothing and returns 0. A changed amount deactivates the old
    Price and adds a new one; rows in use are never edited.

    :returns: the number of rows added or changed.
    """
    data = data if data is not None else load_catalog_file()
    changes = sum(_seed_plan(spec) for spec in data.get("plans", []))
    changes += sum(_seed_addon(spec) for spec in data.get("addons", []))
    changes += sum(_seed_overage(spec) for spec in data.get("overage", []))
    if changes:
        db.session.add(CatalogRevision(changes=changes))  # every process's cached pages go stale
    db.session.commit()
    current_app.extensions.pop(REVISION_KEY, None)  # this process sees its own change at once
    return changes


REVISION_KEY = "catalog_revision"
REVISION_RECHECK_SECONDS = 1.0


def catalog_revision() -> int:
    """The catalog's version: it changes whenever ``seed_catalog`` changes anything.

    Read from the database at most once a second per process (a change made by another process is
    seen within a second; one made by this process at once), so a page served from memory costs
    no query at all.
    """
    now = time.monotonic()
    checked: tuple[float, int] | None = current_app.extensions.get(REVISION_KEY)
    if checked is not None and now - checked[0] < REVISION_RECHECK_SECONDS:
        return checked[1]
    revision = int(db.session.scalar(select(func.max(CatalogRevision.id))) or 0)
    current_app.extensions[REVISION_KEY] = (now, revision)
    return revision


def _seed_plan(spec: dict[str, Any]) -> int:
    plan = db.session.scalar(select(Plan).where(Plan.code == spec["code"]))
    changes = 0
    if plan is None:
        plan = Plan(code=spec["code"], active=True)
        db.session.add(plan)
        changes += 1
    for field in (*PLAN_FIELDS, "highlighted"):
        value = spec.get(field, False if field == "highlighted" else None)
        if getattr(plan, field) != value:
            setattr(plan, field, value)
            changes += 1 if plan.id else 0
    db.session.flush()
    for interval, amount in spec["prices"].items():
        changes += _seed_price(plan, Interval(interval), int(amount))
    return changes


def _seed_price(plan: Plan, interval: Interval, amount_cents: int) -> int:
    current = plan.active_price(interval)
    if current is not None and current.amount_cents == amount_cents:
        return 0
    if current is not None:
        current.active = False
    db.session.add(Price(plan=plan, interval=interval, amount_cents=amount_cents, currency="USD"))
    db.session.flush()
    db.session.refresh(plan)
    return 1


def _seed_addon(spec: dict[str, Any]) -> int:
    changes = 0
    for interval, amount in spec["prices"].items():
        rows = db.session.scalars(
            select(AddOn).where(AddOn.code == spec["code"], AddOn.interval == Interval(interval))
        ).all()
        if any(r.active and r.amount_cents == int(amount) for r in rows):
            continue
        for row in rows:
            row.active = False
        db.session.add(
            AddOn(
                code=spec["code"],
                name=spec["name"],
                description=spec.get("description", ""),
                interval=Interval(interval),
                amount_cents=int(amount),
                storage_gb=spec.get("storage_gb", 0),
            )
        )
        changes += 1
    return changes


def _seed_overage(spec: dict[str, Any]) -> int:
    rows = db.session.scalars(select(OverageRate).where(OverageRate.code == spec["code"])).all()
    if any(r.active and r.unit_amount_cents == spec["unit_amount_cents"] for r in rows):
        return 0
    for row in rows:
        row.active = False
    db.session.add(
        OverageRate(
            code=spec["code"],
            name=spec["name"],
            unit=spec["unit"],
            unit_amount_cents=spec["unit_amount_cents"],
        )
    )
    return 1


@dataclass(frozen=True)
class PlanOffer:
    """A plan as the pricing page shows it for one interval."""

    plan: Plan
    price: Price
    monthly_equivalent_cents: int
    saving_percent: int  # against paying monthly for a year; 0 for monthly prices


def annual_saving_percent(monthly_cents: int, annual_cents: int) -> int:
    """Whole percent saved by paying yearly instead of twelve monthly payments (rounded down,
    so the page never promises more than the customer saves)."""
    full = 12 * monthly_cents
    if full <= 0 or annual_cents >= full:
        return 0
    return proration.percent_down(full - annual_cents, full)


def active_plans() -> list[Plan]:
    """Plans on sale, cheapest tier first, with their prices loaded in the same round trip."""
    query = select(Plan).where(Plan.active.is_(True)).order_by(Plan.rank).options(selectinload(Plan.prices))
    return list(db.session.scalars(query))


def offers(interval: Interval, plans: list[Plan] | None = None) -> list[PlanOffer]:
    """The plans on sale for ``interval``, cheapest first, with their savings."""
    result = []
    for plan in active_plans() if plans is None else plans:
        price = plan.active_price(interval)
        monthly = plan.active_price(Interval.MONTH)
        if price is None:
            continue
        yearly = interval == Interval.YEAR
        saving = annual_saving_percent(monthly.amount_cents, price.amount_cents) if yearly and monthly else 0
        per_month = proration.divide_half_up(price.amount_cents, 12) if yearly else price.amount_cents
        result.append(PlanOffer(plan, price, per_month, saving))
    return result


def best_annual_saving(plans: list[Plan] | None = None) -> int:
    """The largest saving any plan gives for paying yearly (the "save up to N%" headline)."""
    return max((o.saving_percent for o in offers(Interval.YEAR, plans)), default=0)


def active_addons() -> list[AddOn]:
    return list(
        db.session.scalars(select(AddOn).where(AddOn.active.is_(True)).order_by(AddOn.code, AddOn.interval))
    )


def active_overage_rates() -> list[OverageRate]:
    return list(
        db.session.scalars(select(OverageRate).where(OverageRate.active.is_(True)).order_by(OverageRate.code))
    )


# --- the pricing page's figures ----------------------------------------------------------------


@dataclass(frozen=True)
class AddOnOffer:
    """One add-on as the pricing page lists it: its price per month and per year, where sold so."""

    code: str
    name: str
    description: str
    monthly_cents: int | None
    yearly_cents: int | None


@dataclass(frozen=True)
class PlanCard:
    """A plan offer with its storage and feature lines ready to print."""

    offer: PlanOffer
    storage: str
    features: list[str]


@dataclass(frozen=True)
class PricingPage:
    """Everything the pricing page shows for one billing interval."""

    interval: Interval
    cards: list[PlanCard]
    best_annual_saving: int
    addons: list[AddOnOffer]
    overage_rates: list[OverageRate]


def interval_or_month(value: str | None) -> Interval:
    """The interval a visitor asked for; anything unknown means monthly (a bad link is not an error)."""
    try:
        return Interval(value or Interval.MONTH)
    except ValueError:
        return Interval.MONTH


def addon_offers() -> list[AddOnOffer]:
    """Active add-ons, one entry per add-on with its monthly and yearly price side by side."""
    by_code: dict[str, dict[Interval, AddOn]] = {}
    for row in active_addons():
        by_code.setdefault(row.code, {})[row.interval] = row
    result = []
    for rows in by_code.values():
        first = next(iter(rows.values()))
        monthly, yearly = rows.get(Interval.MONTH), rows.get(Interval.YEAR)
        result.append(
            AddOnOffer(
                code=first.code,
                name=first.name,
                description=first.description,
                monthly_cents=monthly.amount_cents if monthly else None,
                yearly_cents=yearly.amount_cents if yearly else None,
            )
        )
    return result


def pricing_page(interval: Interval) -> PricingPage:
    """The plans, savings, add-ons and overage rates on sale, for the pricing page."""
    plans = active_plans()
    return PricingPage(
        interval=interval,
        cards=[
            PlanCard(o, storage_label(o.plan.storage_gb), marketing_features(o.plan))
            for o in offers(interval, plans)
        ],
        best_annual_saving=best_annual_saving(plans),
        addons=addon_offers(),
        overage_rates=active_overage_rates(),
    )


# The page states storage and credits from the plan's own columns (what is enforced), so the
# marketing lines that repeat them are left out rather than risk two figures that disagree.
_FIGURE_LINES = ("cloud storage", "processing credits")


def marketing_features(plan: Plan) -> list[str]:
    """The plan's feature lines other than its storage and monthly credits."""
    return [f for f in plan.features if not any(word in f.lower() for word in _FIGURE_LINES)]


def storage_label(gigabytes: int) -> str:
    """``50`` -> ``"50 GB"``, ``1000`` -> ``"1 TB"`` (decimal units, as storage is sold)."""
    if gigabytes >= 1000 and gigabytes % 1000 == 0:
        return f"{gigabytes // 1000} TB"
    return f"{gigabytes} GB"
