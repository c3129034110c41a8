"""The pricing page: plans, add-ons and overage, monthly or yearly, as a page or as htmx plan cards."""

from __future__ import annotations

from flask import Blueprint, Response, request

from dicomportal.billing.catalog import catalog_revision, interval_or_month, pricing_page
from dicomportal.views._htmx import render, wants_partial
from dicomportal.views._shared_pages import SharedPages

bp = Blueprint("plans", __name__, url_prefix="/plans")
pages = SharedPages("plans")


@bp.get("/")
def pricing() -> Response:
    """Plans for ``?interval=month|year`` (anything else: monthly); only the cards for htmx.
    Anonymous visitors get it from memory until the catalog changes."""
    interval = interval_or_month(request.args.get("interval"))
    key = ("pricing", interval, wants_partial(), catalog_revision())
    return pages.serve(
        key, lambda: render("plans/pricing.html", "plans/_plan_cards.html", pricing=pricing_page(interval))
    )
