"""The pricing page (it knows a subscriber's plan) and changing plan with an exact preview."""

from __future__ import annotations

from flask import Blueprint, Response, abort, flash, request, url_for
from flask_login import current_user, login_required

from dicomportal.billing import changes, subscriptions
from dicomportal.billing.catalog import catalog_revision, interval_or_month, pricing_page
from dicomportal.billing.errors import BillingError
from dicomportal.models import Subscription
from dicomportal.views._htmx import redirect_after_post, render, wants_partial
from dicomportal.views._manage import act, changed_message
from dicomportal.views._shared_pages import SharedPages
from dicomportal.views.forms.manage import ChangePlanForm, ConfirmForm

bp = Blueprint("plans", __name__, url_prefix="/plans")
pages = SharedPages("plans")


def your_subscription() -> Subscription | None:
    """The visitor's live subscription (None for anonymous visitors: their page is shared)."""
    if not current_user.is_authenticated:
        return None
    return subscriptions.live_subscription(current_user.id)


@bp.get("/")
def pricing() -> Response:
    """Plans for ``?interval=month|year`` (anything else: monthly); only the cards for htmx.
    Anonymous visitors get it from memory until the catalog changes; a subscriber's cards say
    "Your plan" and offer "Switch" (never cached: SharedPages renders afresh for them)."""
    interval = interval_or_month(request.args.get("interval"))
    key = ("pricing", interval, wants_partial(), catalog_revision())
    return pages.serve(
        key,
        lambda: render(
            "plans/pricing.html",
            "plans/_plan_cards.html",
            pricing=pricing_page(interval),
            mine=your_subscription(),
        ),
    )


@bp.get("/change")
@login_required
def change() -> Response:
    """The plans a subscriber can move to; ``?price=`` adds the preview (only the preview for htmx)."""
    subscription = subscriptions.live_subscription(current_user.id)
    if subscription is None:
        flash("You have no subscription to change. Choose a plan to subscribe.", "info")
        return redirect_after_post(url_for("plans.pricing"))
    quote, problem = None, None
    if request.args.get("price", "").isdigit():
        try:
            quote = changes.preview(current_user.id, subscription.id, int(request.args["price"]))
        except BillingError as exc:
            problem = str(exc)
    try:
        offered = changes.options(subscription)
    except BillingError:
        offered = []
    return render(
        "plans/change.html",
        "plans/_preview.html",
        subscription=subscription,
        options=offered,
        quote=quote,
        problem=problem,
        form=ConfirmForm(),
    )


@bp.post("/change/<int:subscription_id>")
@login_required
def confirm_change(subscription_id: int) -> Response:
    """Apply the previewed change: upgrades and monthly-to-annual now (charged at once), others at
    the period end. Another customer's subscription is a 404."""
    form = ChangePlanForm()
    if not form.validate_on_submit():
        abort(400)
    return act(
        lambda: changes.change_plan(
            current_user.id, subscription_id, form.price_id.data, form.seen_total.data
        ),
        changed_message,
        back_to=url_for("plans.change", price=form.price_id.data),
    )


@bp.post("/change/<int:subscription_id>/withdraw")
@login_required
def withdraw(subscription_id: int) -> Response:
    """Keep the current plan: the scheduled change is withdrawn."""
    if not ConfirmForm().validate_on_submit():
        abort(400)
    return act(
        lambda: changes.withdraw_scheduled_change(current_user.id, subscription_id),
        "The scheduled change is withdrawn. Your plan stays as it is.",
    )
