"""The site's short addresses and the addresses pages had before they moved into their blueprint.

Not a blueprint of its own pages (it renders nothing, so it has no template folder): ``/`` and
``/demo`` are the addresses people are given; ``/pricing`` and ``/subscribe/...`` keep old links,
bookmarks and emails working. GETs move for good (301); form posts keep their method (308).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, redirect, request, url_for

bp = Blueprint("redirects", __name__)


def moved(endpoint: str, code: int = 301, **values: Any) -> Response:
    """Redirect to ``endpoint`` with the request's query string kept."""
    target = url_for(endpoint, **values)
    if request.query_string:
        target += "?" + request.query_string.decode()
    return redirect(target, code=code)  # type: ignore[return-value]


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
    """The pricing page moved to /plans/."""
    return moved("plans.pricing")


@bp.route("/subscribe/<plan_code>", methods=["GET", "POST"])
def checkout_details(plan_code: str) -> Response:
    """Subscribing moved to /checkout/."""
    return moved("checkout.details", 308 if request.method == "POST" else 301, plan_code=plan_code)


@bp.get("/subscribe/<plan_code>/card")
def checkout_card(plan_code: str) -> Response:
    return moved("checkout.card", plan_code=plan_code)


@bp.post("/subscribe/<plan_code>/confirm")
def checkout_confirm(plan_code: str) -> Response:
    return moved("checkout.confirm", 308, plan_code=plan_code)


@bp.get("/subscribe/done")
def checkout_done() -> Response:
    return moved("checkout.done")


@bp.get("/subscribe/authenticate/<int:payment_id>")
def checkout_authenticate(payment_id: int) -> Response:
    return moved("checkout.authenticate", payment_id=payment_id)


@bp.post("/subscribe/complete")
def checkout_complete() -> Response:
    return moved("checkout.complete", 308)
