"""The catalog is seeded from the package's data file, idempotently, and never edits a price in use."""

from __future__ import annotations

import copy

from flask import Flask
from sqlalchemy import func, select

from dicomportal.billing.catalog import (
    annual_saving_percent,
    best_annual_saving,
    load_catalog_file,
    offers,
    seed_catalog,
)
from dicomportal.extensions import db
from dicomportal.models import AddOn, Interval, OverageRate, Plan, Price


def _snapshot() -> list[tuple[object, ...]]:
    rows = db.session.execute(
        select(Plan.code, Plan.name, Plan.rank, Price.id, Price.interval, Price.amount_cents, Price.active)
        .join(Price)
        .order_by(Price.id)
    )
    return [tuple(r) for r in rows]


def test_seeding_twice_changes_nothing(app: Flask) -> None:
    before = _snapshot()
    assert seed_catalog() == 0
    assert _snapshot() == before
    assert db.session.scalar(select(func.count()).select_from(AddOn)) == 2
    assert db.session.scalar(select(func.count()).select_from(OverageRate)) == 1


def test_four_tiers_from_patient_to_surgical_each_sold_monthly_and_yearly(app: Flask) -> None:
    plans = db.session.scalars(select(Plan).order_by(Plan.rank)).all()
    assert [p.code for p in plans] == ["patient", "professional", "md", "surgical"]
    for plan in plans:
        monthly, yearly = plan.active_price(Interval.MONTH), plan.active_price(Interval.YEAR)
        assert monthly and yearly and monthly.currency == yearly.currency == "USD"
        assert 20 <= annual_saving_percent(monthly.amount_cents, yearly.amount_cents) <= 50
        assert plan.storage_gb > 0 and plan.monthly_credits > 0 and plan.features


def test_a_changed_price_adds_a_row_and_keeps_the_old_one(app: Flask) -> None:
    data = copy.deepcopy(load_catalog_file())
    old = db.session.scalar(select(Plan).where(Plan.code == "md")).active_price(Interval.MONTH)
    old_id, old_amount = old.id, old.amount_cents
    data["plans"][2]["prices"]["month"] = old_amount + 500

    assert seed_catalog(data) == 1

    kept = db.session.get(Price, old_id)
    assert kept.amount_cents == old_amount and kept.active is False
    plan = db.session.scalar(select(Plan).where(Plan.code == "md"))
    assert plan.active_price(Interval.MONTH).amount_cents == old_amount + 500


def test_savings_are_computed_from_the_catalog(app: Flask) -> None:
    yearly = {o.plan.code: o for o in offers(Interval.YEAR)}
    assert yearly["patient"].saving_percent == 50  # $9 x 12 = $108 against $54
    assert yearly["professional"].saving_percent == 31  # $348 against $240, rounded down
    assert yearly["patient"].monthly_equivalent_cents == 450
    assert best_annual_saving() == 50


def test_saving_is_never_rounded_up() -> None:
    assert annual_saving_percent(1000, 8001) == 33  # 33.325% saved
    assert annual_saving_percent(1000, 12000) == 0
    assert annual_saving_percent(0, 0) == 0
