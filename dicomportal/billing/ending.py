"""The end of a subscription: access stops, the data is kept for the restore window.

Used by the renewal job (a cancelled subscription's period is over), by dunning (the last retry
failed) and re-exported by :mod:`dicomportal.billing.cancellation`.
"""

from __future__ import annotations

from datetime import timedelta

from flask import current_app

from dicomportal import clock
from dicomportal.billing import audit, notices
from dicomportal.models import Subscription, SubscriptionStatus


def end(subscription: Subscription, reason: str) -> None:
    """End a subscription now; its data is kept until the restore deadline (not committed)."""
    now = clock.now()
    subscription.status = SubscriptionStatus.ENDED
    subscription.ended_at = now
    subscription.ended_reason = reason
    subscription.restore_deadline = now + timedelta(days=current_app.config["RESTORE_WINDOW_DAYS"])
    audit.record("subscription.ended", subscription.user_id, subscription, reason=reason)


def end_at_period_end(subscription: Subscription) -> None:
    """The period of a cancelled subscription is over: end it and tell the customer."""
    end(subscription, "canceled")
    notices.subscription_ended(subscription)
