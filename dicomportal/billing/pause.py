"""Pausing: ``PAUSE_WEEKS`` weeks from the end of the paid period
(docs/architecture.md#4-subscription-lifecycle).

Nothing is invoiced while paused; studies and unused credits are kept, viewing stays allowed and
uploads are blocked (billing/entitlements.py). A reminder goes out ``REMINDER_BEFORE`` the end;
at the end the renewal job resumes it with a new period and a charge (dunning applies if it
fails). "Resume now" starts that new period at once.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.exc import StaleDataError

from dicomportal import clock
from dicomportal.billing import audit, ending, notices, subscriptions
from dicomportal.billing.errors import PlanChangeNotAllowed
from dicomportal.extensions import db
from dicomportal.models import Subscription, SubscriptionStatus

REMINDER_BEFORE = timedelta(days=7)


def pause_length() -> timedelta:
    return timedelta(weeks=int(current_app.config["PAUSE_WEEKS"]))


def pause(subscription: Subscription) -> None:
    """Schedule a pause from the end of the paid period (not committed).

    :raises PlanChangeNotAllowed: already paused or pausing, cancelled, or not active.
    """
    if subscription.is_paused or subscription.pause_starts_at is not None:
        raise PlanChangeNotAllowed("Your subscription is already paused.")
    if subscription.cancel_at_period_end:
        raise PlanChangeNotAllowed("Your subscription is set to end. Undo the cancellation first.")
    if not subscription.is_active:
        raise PlanChangeNotAllowed("Only an active subscription can be paused.")
    subscription.pause_starts_at = subscription.current_period_end
    subscription.pause_ends_at = subscription.current_period_end + pause_length()
    subscription.scheduled_price_id = None
    audit.record(
        "subscription.pause_scheduled",
        subscription.user_id,
        subscription,
        starts=subscription.pause_starts_at.isoformat(),
        ends=subscription.pause_ends_at.isoformat(),
    )
    notices.pause_scheduled(subscription)


def pause_subscription(user_id: int, subscription_id: int) -> None:
    """The customer pauses (see :func:`pause`).

    :raises LookupError: not the customer's subscription.
    :raises PlanChangeNotAllowed: see :func:`pause`.
    """
    subscriptions.act_on_own(user_id, subscription_id, pause)


def resume_now(user_id: int, subscription_id: int) -> None:
    """ "Resume now": a paused subscription starts a new period at once and its invoice is charged;
    a pause that has not begun yet is simply called off (nothing to charge).

    :raises LookupError: not the customer's subscription.
    :raises PlanChangeNotAllowed: not paused.
    """

    def resume(subscription: Subscription) -> int | None:
        if subscription.is_paused:
            return subscriptions.begin_period(subscription, "resumed")
        if subscription.pause_starts_at is None:
            raise PlanChangeNotAllowed("Your subscription is not paused.")
        subscription.pause_starts_at = subscription.pause_ends_at = None
        audit.record("subscription.pause_withdrawn", subscription.user_id, subscription)
        return None

    payment_id = subscriptions.act_on_own(user_id, subscription_id, resume)
    if payment_id is not None:
        subscriptions.collect(payment_id, customer_present=True)  # the customer resumes on our page


def resume_due(subscription_id: int) -> tuple[str, int | None]:
    """The renewal job's step for a paused subscription whose pause is over: resumed (with the
    payment to charge) or ended (it was cancelled while paused); ``skipped`` if not due."""
    subscription = db.session.get(Subscription, subscription_id, populate_existing=True)
    now = clock.now()
    if subscription is None or not subscription.is_paused or (subscription.pause_ends_at or now) > now:
        db.session.rollback()
        return "skipped", None
    try:
        if subscription.cancel_at_period_end:
            ending.end_at_period_end(subscription)
            db.session.commit()
            return "ended", None
        payment_id = subscriptions.begin_period(subscription, "resumed")
        db.session.commit()
    except (StaleDataError, IntegrityError):
        db.session.rollback()
        return "skipped", None
    return "resumed", payment_id


def remind(subscription_id: int) -> bool:
    """Queue the "your pause ends soon" email once per pause; True if queued now."""
    subscription = db.session.get(Subscription, subscription_id, populate_existing=True)
    if subscription is None or subscription.pause_reminder_sent_at is not None or not subscription.is_paused:
        db.session.rollback()
        return False
    subscription.pause_reminder_sent_at = clock.now()
    notices.pause_ending(subscription)
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()
        return False
    return True


def due_for_reminder() -> list[int]:
    """Paused subscriptions that end within ``REMINDER_BEFORE`` and have had no reminder."""
    query = select(Subscription.id).where(
        Subscription.status == SubscriptionStatus.PAUSED,
        Subscription.pause_reminder_sent_at.is_(None),
        Subscription.cancel_at_period_end.is_(False),  # it will end, not resume: nothing to remind
        Subscription.pause_ends_at <= clock.now() + REMINDER_BEFORE,
    )
    ids = list(db.session.scalars(query))
    db.session.rollback()
    return ids


def due_to_resume() -> list[int]:
    query = select(Subscription.id).where(
        Subscription.status == SubscriptionStatus.PAUSED, Subscription.pause_ends_at <= clock.now()
    )
    ids = list(db.session.scalars(query))
    db.session.rollback()
    return ids
