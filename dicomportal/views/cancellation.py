"""The cancel dialog's three options (pause, a cheaper plan, cancel) and what follows: undo,
resume now. An htmx dialog on the dashboard; without JavaScript the same forms as a page."""

from __future__ import annotations

from flask import Blueprint, Response, abort, url_for
from flask_login import current_user, login_required

from dicomportal.billing import cancellation, changes, pause, subscriptions
from dicomportal.billing.money import format_day
from dicomportal.models import Subscription
from dicomportal.views._htmx import redirect_after_post, render
from dicomportal.views._manage import act, changed_message
from dicomportal.views.forms.manage import CancelForm, ChangePlanForm, ConfirmForm

bp = Blueprint("cancellation", __name__, url_prefix="/cancellation")


def _page() -> str:
    return url_for("cancellation.options")


@bp.get("/")
@login_required
def options() -> Response:
    """Pause, switch to a cheaper plan, or cancel: the dialog (htmx) or the same as a page."""
    subscription = subscriptions.live_subscription(current_user.id)
    if subscription is None or subscription.ends_at_period_end:
        return redirect_after_post(url_for("account.dashboard"))
    return render(
        "cancellation/page.html",
        "cancellation/_dialog.html",
        subscription=subscription,
        cheaper=changes.cheaper_plans(subscription),
        pause_until=subscription.current_period_end + pause.pause_length(),
        form=CancelForm(),
        confirm=ConfirmForm(),
    )


def _checked(form: ConfirmForm | CancelForm | ChangePlanForm) -> None:
    if not form.validate_on_submit():
        abort(400)


@bp.post("/<int:subscription_id>/pause")
@login_required
def pause_subscription(subscription_id: int) -> Response:
    """Option (a): pause for PAUSE_WEEKS weeks from the end of the paid period."""
    _checked(ConfirmForm())
    return act(lambda: pause.pause_subscription(current_user.id, subscription_id), _paused, _page())


def _paused(_result: None) -> str:
    subscription = subscriptions.live_subscription(current_user.id)
    assert subscription is not None and subscription.pause_ends_at and subscription.pause_starts_at
    return (
        f"Your subscription pauses on {format_day(subscription.pause_starts_at)} and resumes on "
        f"{format_day(subscription.pause_ends_at)}. We've emailed you the details."
    )


@bp.post("/<int:subscription_id>/downgrade")
@login_required
def downgrade(subscription_id: int) -> Response:
    """Option (b): a cheaper plan from the period end."""
    form = ChangePlanForm()
    _checked(form)
    return act(
        lambda: changes.change_plan(current_user.id, subscription_id, form.price_id.data, None),
        changed_message,
        _page(),
    )


@bp.post("/<int:subscription_id>/cancel")
@login_required
def cancel(subscription_id: int) -> Response:
    """Option (c): cancel at the period end, with the reason the customer gives (optional)."""
    form = CancelForm()
    _checked(form)
    return act(
        lambda: cancellation.cancel_subscription(
            current_user.id, subscription_id, form.reason.data, form.note.data
        ),
        _canceled,
        _page(),
    )


def _canceled(_result: None) -> str:
    subscription: Subscription | None = subscriptions.live_subscription(current_user.id)
    assert subscription is not None
    until = subscription.pause_ends_at if subscription.is_paused else None
    day = format_day(until or subscription.current_period_end)
    return f"Your subscription is cancelled. It stays active until {day}."


@bp.post("/<int:subscription_id>/undo")
@login_required
def undo(subscription_id: int) -> Response:
    """ "Undo cancellation": the subscription continues and renews as before."""
    _checked(ConfirmForm())
    return act(
        lambda: cancellation.undo_cancellation(current_user.id, subscription_id),
        "Your cancellation is undone. Your subscription continues.",
    )


@bp.post("/<int:subscription_id>/resume")
@login_required
def resume(subscription_id: int) -> Response:
    """ "Resume now": a paused subscription starts a new period at once (charged); a pause that has
    not started yet is called off."""
    _checked(ConfirmForm())
    return act(
        lambda: pause.resume_now(current_user.id, subscription_id),
        "Your subscription is running again.",
    )
