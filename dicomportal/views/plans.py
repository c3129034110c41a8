"""The pricing page: plans, add-ons and overage, monthly or yearly, as a page or as htmx plan cards."""

from __future__ import annotations

from flask import Blueprint, Response, redirect, request, url_for

from dicomportal.billing.catalog import interval_or_month, pricing_page
from dicomportal.views._htmx import render

bp = Blueprint("plans", __name__)


@bp.get("/")
def home() -> Response:
    """Visitors start at the pricing page."""
    return redirect(url_for("plans.pricing"))  # type: ignore[return-value]


@bp.get("/demo")
def demo() -> Response:
    """The free demo viewer: no account, a pre-loaded scan, every tool."""
    return redirect(url_for("viewer.page", key="demo"))  # type: ignore[return-value]


@bp.get("/pricing")
def pricing() -> Response:
    """Plans for ``?interval=month|year`` (anything else: monthly); only the cards for htmx."""
    page = pricing_page(interval_or_month(request.args.get("interval")))
    return render("plans/pricing.html", "plans/_plan_cards.html", pricing=page)
