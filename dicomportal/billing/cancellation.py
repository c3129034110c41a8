"""Cancelling at period end, undoing it, the end itself, and restoring by support.

Cancel = a flag: access continues until the paid period ends, then the renewal job calls
:func:`end_at_period_end`. The data is kept until ``restore_deadline`` (``RESTORE_WINDOW_DAYS``),
during which support can :func:`restore` the subscription (same plan, a new period, a charge);
after it the purge job deletes the customer's data once.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dicomportal import clock
from dicomportal.billing import audit, notices, subscriptions
from dicomportal.billing.ending import end, end_at_period_end
from dicomportal.billing.errors import PlanChangeNotAllowed
from dicomportal.extensions import db
from dicomportal.models import Subscription, User

# The reasons the cancel form offers (value, label); "other" asks for the customer's own words.
REASONS = (
    ("too_expensive", "It costs too much"),
    ("not_using", "I'm not using it enough"),
    ("missing_feature", "A feature I need is missing"),
    ("switching", "I'm switching to another product"),
    ("temporary", "I only needed it for a while"),
    ("other", "Something else"),
)
NOTE_MAX = 400
AGAIN = "This customer has subscribed again; there is nothing to restore."
__all__ = ["REASONS", "cancel", "end", "end_at_period_end", "restore", "undo"]


def cancel(subscription: Subscription, reason: str | None, note: str | None) -> None:
    """Cancel at period end, recording the reason; a scheduled change or pause is dropped.

    :raises PlanChangeNotAllowed: already cancelled, ended, or not started.
    """
    if subscription.has_ended or subscription.is_incomplete:
        raise PlanChangeNotAllowed("This subscription is not active, so there is nothing to cancel.")
    if subscription.cancel_at_period_end:
        raise PlanChangeNotAllowed("Your subscription is already cancelled.")
    known = dict(REASONS)
    reason = reason if reason in known else None
    note = (note or "").strip()[:NOTE_MAX] or None
    subscription.cancel_at_period_end = True
    subscription.canceled_at = clock.now()
    subscription.cancel_reason = "; ".join(p for p in (reason, note) if p) or None
    subscription.scheduled_price_id = None
    if not subscription.is_paused:
        subscription.pause_starts_at = subscription.pause_ends_at = None
    audit.record("subscription.canceled", subscription.user_id, subscription, reason=reason, note=note)
    notices.subscription_canceled(subscription)


def undo(subscription: Subscription) -> None:
    """Keep the subscription after all (until the period end).

    :raises PlanChangeNotAllowed: not cancelled, or it has already ended.
    """
    if subscription.has_ended:
        raise PlanChangeNotAllowed(
            "Your subscription has already ended. Subscribe again from the pricing page, or contact support."
        )
    if not subscription.cancel_at_period_end:
        raise PlanChangeNotAllowed("Your subscription is not cancelled.")
    subscription.cancel_at_period_end = False
    subscription.canceled_at = None
    audit.record("subscription.cancel_undone", subscription.user_id, subscription)
    notices.cancellation_undone(subscription)


def restorable(email: str) -> Subscription:
    """The ended subscription support may restore for ``email``.

    :raises PlanChangeNotAllowed: no such customer, a live subscription, or the window has passed.
    """
    user = db.session.scalar(select(User).where(User.email == email.strip().lower()))
    if user is None:
        raise PlanChangeNotAllowed(f"No customer with the email {email}.")
    latest: Subscription | None = db.session.scalar(
        select(Subscription).where(Subscription.user_id == user.id).order_by(Subscription.id.desc()).limit(1)
    )
    if latest is None or not latest.has_ended:
        raise PlanChangeNotAllowed("This customer has no ended subscription to restore.")
    deadline = latest.restore_deadline
    if latest.data_purged_at is not None or deadline is None or deadline <= clock.now():
        raise PlanChangeNotAllowed(
            "The restore window has passed and the customer's data has been or is being deleted. "
            "They can subscribe again from the pricing page."
        )
    return latest


def cancel_subscription(user_id: int, subscription_id: int, reason: str | None, note: str | None) -> None:
    """The customer cancels at period end (see :func:`cancel`).

    :raises LookupError: not the customer's subscription.
    :raises PlanChangeNotAllowed: see :func:`cancel`.
    """
    subscriptions.act_on_own(user_id, subscription_id, lambda s: cancel(s, reason, note))


def undo_cancellation(user_id: int, subscription_id: int) -> None:
    """The customer keeps their subscription ("Undo cancellation").

    :raises LookupError: not the customer's subscription.
    :raises PlanChangeNotAllowed: see :func:`undo`.
    """
    subscriptions.act_on_own(user_id, subscription_id, undo)


def restore(email: str, actor_id: int | None = None) -> Subscription:
    """Support restores an ended subscription within the window: same plan, a new period from now,
    its invoice charged at once; the data was never deleted. Written to the audit log.

    :raises PlanChangeNotAllowed: see :func:`restorable`; or the customer has subscribed again.
    """
    subscription = restorable(email)
    if subscriptions.live_subscription(subscription.user_id) is not None:
        raise PlanChangeNotAllowed(AGAIN)
    try:
        subscription.ended_at = subscription.ended_reason = subscription.restore_deadline = None
        subscription.cancel_at_period_end = False
        subscription.canceled_at = None
        subscription.scheduled_price_id = None
        payment_id = subscriptions.begin_period(subscription, "restored", actor_id)
        notices.subscription_restored(subscription)
        db.session.commit()
    except IntegrityError as exc:
        db.session.rollback()
        raise PlanChangeNotAllowed(
            "This customer has subscribed again; there is nothing to restore."
        ) from exc
    if payment_id is not None:
        subscriptions.collect(payment_id, customer_present=False)  # support restores: merchant-initiated
    db.session.refresh(subscription)
    return subscription
