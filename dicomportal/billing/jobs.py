"""Scheduled work, one function per job. Each is idempotent and safe on several machines at once.

``run_once`` is one pass (``dicomportal tick``); ``run_forever`` is ``dicomportal worker``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

from sqlalchemy import select

from dicomportal.billing import clock, collection, subscriptions
from dicomportal.billing.errors import ChargeInProgress, GatewayUnavailable
from dicomportal.extensions import db
from dicomportal.models import Invoice, InvoiceStatus, Subscription, SubscriptionStatus

log = logging.getLogger(__name__)

MAX_BATCH = 200


def renew_due_subscriptions() -> int:
    """Renew every active subscription whose period has ended (catching up missed periods)."""
    now = clock.now()
    renewed = 0
    for _ in range(24):  # at most two years of missed monthly periods in one pass
        due = db.session.scalars(
            select(Subscription.id)
            .where(Subscription.status == SubscriptionStatus.ACTIVE, Subscription.current_period_end <= now)
            .order_by(Subscription.current_period_end)
            .limit(MAX_BATCH)
        ).all()
        db.session.rollback()  # release the snapshot; each renewal runs in its own transaction
        progress = sum(subscriptions.renew(sub_id) is not None for sub_id in due)
        renewed += progress
        if not progress:
            break
    return renewed


def retry_failed_payments() -> int:
    """Dunning: charge open invoices whose next retry is due."""
    now = clock.now()
    due = db.session.scalars(
        select(Invoice.id)
        .where(Invoice.status == InvoiceStatus.OPEN, Invoice.next_attempt_at <= now)
        .order_by(Invoice.next_attempt_at)
        .limit(MAX_BATCH)
    ).all()
    db.session.rollback()
    attempted = 0
    for invoice_id in due:
        try:
            collection.charge_invoice(invoice_id)
            attempted += 1
        except ChargeInProgress:
            continue
        except GatewayUnavailable:
            db.session.rollback()
            log.warning("dunning paused: Stripe unavailable")
            break
    return attempted


def expire_incomplete_subscriptions() -> int:
    """End subscriptions whose first payment waited for 3-D Secure for too long."""
    cutoff = clock.now() - subscriptions.INCOMPLETE_EXPIRES_AFTER
    stale = db.session.scalars(
        select(Subscription.id)
        .where(Subscription.status == SubscriptionStatus.INCOMPLETE, Subscription.created_at <= cutoff)
        .limit(MAX_BATCH)
    ).all()
    db.session.rollback()
    ended = 0
    for subscription_id in stale:
        try:
            ended += subscriptions.expire_incomplete(subscription_id)
        except GatewayUnavailable:
            db.session.rollback()
            break
    return ended


def reconcile_payments() -> int:
    """Finish payments left pending by a crash or an outage."""
    return collection.reconcile_pending()


def deliver_mail() -> int:
    from dicomportal.mail import deliver_pending

    return int(deliver_pending())


def sweep_study_storage() -> int:
    """Finish uploads and deletions of studies that a crash or an unreachable store left undone."""
    from dicomportal.studies.jobs import sweep_study_storage as sweep

    outcomes = sweep()  # a count per outcome; this list of jobs still takes one number
    return sum(n for outcome, n in outcomes.items() if outcome != "deferred")


JOBS: list[tuple[str, Callable[[], int]]] = [
    ("reconcile_payments", reconcile_payments),
    ("renew_due_subscriptions", renew_due_subscriptions),
    ("retry_failed_payments", retry_failed_payments),
    ("expire_incomplete_subscriptions", expire_incomplete_subscriptions),
    ("deliver_mail", deliver_mail),
    ("sweep_study_storage", sweep_study_storage),
]


def run_once() -> dict[str, int]:
    """One pass of every job at the clock's "now" (``dicomportal tick --now`` moves it first).
    A failing job is logged and the others still run; it is retried on the next pass."""
    results: dict[str, int] = {}
    for name, job in JOBS:
        try:
            results[name] = job()
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", name)
            results[name] = -1
    return results


def run_forever(interval_seconds: float = 30.0, stop: threading.Event | None = None) -> None:
    """``dicomportal worker``: a pass every ``interval_seconds`` until ``stop`` is set."""
    stop = stop or threading.Event()
    while not stop.is_set():
        started = time.monotonic()
        run_once()
        db.session.remove()
        stop.wait(max(0.0, interval_seconds - (time.monotonic() - started)))
