"""What happens to a customer's data once their subscription has ended and the restore window has
passed: every domain that keeps customer data registers a purger here, and billing's purge job
calls them all (docs/architecture.md#12-seams-between-domains).

Billing decides when (it owns the lifecycle); the domains decide what (studies delete stored
files and share links, for instance). Billing never imports them: they register themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from sqlalchemy import exists, select
from sqlalchemy.orm import aliased
from sqlalchemy.orm.exc import StaleDataError

from dicomportal import clock
from dicomportal.billing import audit
from dicomportal.extensions import db
from dicomportal.models import Subscription, SubscriptionStatus

# A purger deletes one customer's data of its kind and says what it deleted, e.g.
# {"studies": 3, "files": 412, "bytes": 219_000_000}. It must be idempotent (a purge interrupted
# by a crash runs again) and raise only when it could not finish (the purge is then retried).
Purger = Callable[[int], Mapping[str, int]]

_PURGERS: dict[str, Purger] = {}


def register_purger(name: str, purger: Purger) -> None:
    """Register ``purger`` under ``name`` (registering a name again replaces it)."""
    _PURGERS[name] = purger


def purge_customer_data(user_id: int) -> dict[str, dict[str, int]]:
    """Run every registered purger for ``user_id``; what each deleted, by purger name.

    :raises Exception: a purger could not finish; those before it have run (they are idempotent).
    """
    return {name: dict(purger(user_id)) for name, purger in sorted(_PURGERS.items())}


def due_for_purge() -> list[int]:
    """Ended subscriptions whose restore window is over and whose data is not purged yet, leaving
    out customers who have a later subscription (they came back: their data stays)."""
    later = aliased(Subscription)
    query = select(Subscription.id).where(
        Subscription.status == SubscriptionStatus.ENDED,
        Subscription.data_purged_at.is_(None),
        Subscription.restore_deadline <= clock.now(),
        ~exists().where(later.user_id == Subscription.user_id, later.id > Subscription.id),
    )
    ids = list(db.session.scalars(query))
    db.session.rollback()
    return ids


def purge_after_window(subscription_id: int) -> bool:
    """Delete the customer's data through every purger, mark it done and write what was deleted to
    the audit log, in one transaction (a purger's own deletions are idempotent, so a crash before
    the commit runs it again). True if purged now; False if not due (or already done)."""
    subscription = db.session.get(Subscription, subscription_id, populate_existing=True)
    now = clock.now()
    due = (
        subscription is not None
        and subscription.has_ended
        and subscription.data_purged_at is None
        and subscription.restore_deadline is not None
        and subscription.restore_deadline <= now
    )
    if not due or subscription is None:
        db.session.rollback()
        return False
    deleted = purge_customer_data(subscription.user_id)
    subscription.data_purged_at = now
    audit.record("customer_data.purged", subscription.user_id, subscription, deleted=deleted)
    try:
        db.session.commit()
    except StaleDataError:
        db.session.rollback()  # another worker purged it first
        return False
    return True
