"""The pricing page: plans, add-ons and overage, monthly or yearly, as a page or as htmx plan cards."""

from __future__ import annotations

from flask import Blueprint, Response, request

from dicomportal.billing.catalog import interval_or_month, pricing_page
from dicomportal.views._htmx import render

bp = Blueprint("plans", __name__, url_prefix="/plans")


@bp.get("/")
def pricing() -> Response:
    """Plans for ``?interval=month|year`` (anything else: monthly); only the cards for htmx."""
    page = pricing_page(interval_or_month(request.args.get("interval")))
    return render("plans/pricing.html", "plans/_plan_cards.html", pricing=page)
