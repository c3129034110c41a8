"""Billing's scheduled work (registered with :mod:`dicomportal.jobs`): reconcile interrupted
payments, renew due subscriptions, give stranded invoices a retry, dunning retries, expiry of
first payments abandoned at 3-D Secure, billing details not yet copied to the Stripe customer, and once
a day the books against Stripe (reconcile).

What goes wrong is sorted: Stripe unreachable -> the item is ``deferred`` (its payment stays
pending and the pass makes no more Stripe calls); Stripe refusing for good -> the payment is
``declined`` with Stripe's code and dunning takes over; Stripe rate limiting -> the call waits and
is tried again; anything unexpected -> ``errors``, logged and retried with backoff.

Database work runs in the pass's own thread; the Stripe-bound step of each item (charging or
re-reading a payment) runs in a pool of ``STRIPE_CONCURRENCY`` threads, so real Stripe's latency
(hundreds of milliseconds a call) is paid that many at a time. Workers on several machines divide
the due subscriptions with a claim on each row (``renewal_claimed_until``, taken with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL).
"""

from __future__ import annotations

import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import Any

from flask import current_app
from sqlalchemy import and_, exists, or_, select, update

from dicomportal import clock, jobs
from dicomportal.billing import (
    collection,
    notices,
    pause,
    profiles,
    reconcile,
    refunds,
    retention,
    subscriptions,
)
from dicomportal.billing.errors import ChargeInProgress, GatewayUnavailable, RateLimited
from dicomportal.extensions import db
from dicomportal.models import (
    IN_FLIGHT,
    BillingReason,
    Invoice,
    InvoiceStatus,
    JobItemFailure,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
)

log = logging.getLogger(__name__)

CLAIM_FOR = timedelta(minutes=10)
RECONCILE_AFTER = timedelta(minutes=2)
RATE_LIMIT_RETRIES = 5
RATE_LIMIT_FIRST_WAIT = 0.5  # seconds, doubled each time, with jitter

CHARGE_OUTCOME = {
    PaymentStatus.SUCCEEDED: "charged",
    PaymentStatus.FAILED: "declined",
    PaymentStatus.REQUIRES_ACTION: "action_required",
    PaymentStatus.PENDING: "deferred",
    PaymentStatus.CANCELED: "canceled",
}


class BillingRun(jobs.ItemRun):
    """A billing job's run: Stripe-bound steps ``STRIPE_CONCURRENCY`` at a time, and once Stripe
    stops answering, no more Stripe calls in this pass."""

    def __init__(self, job: str) -> None:
        super().__init__(job, int(current_app.config.get("STRIPE_CONCURRENCY", 1)))
        self.stripe_down = False

    def __enter__(self) -> BillingRun:
        return self

    def charge(self, payment_id: int) -> None:
        """Drive a committed pending payment and count its outcome (in the pool)."""
        self.submit(lambda: self._charge(payment_id), payment_id, "payment", backoff=False)

    def _charge(self, payment_id: int) -> str:
        payment = self.call_stripe(
            lambda: collection.drive(payment_id, fresh=True, customer_present=False), f"payment {payment_id}"
        )
        return "deferred" if payment is None else CHARGE_OUTCOME[payment.status]

    def call_stripe(self, call: Callable[[], Any], item: str) -> Any:
        """``call()`` unless Stripe is down in this pass; waits and retries on rate limits; returns
        None (deferred: the item stays pending) when Stripe cannot be reached."""
        for attempt in range(RATE_LIMIT_RETRIES + 1):
            if self.stripe_down:
                return None
            try:
                return call()
            except RateLimited:
                db.session.rollback()
                if attempt == RATE_LIMIT_RETRIES:
                    log.warning("%s: still rate limited at %s; deferred", self.job, item)
                    return None
                time.sleep(RATE_LIMIT_FIRST_WAIT * 2**attempt * (1 + random.random()))
            except GatewayUnavailable as exc:
                db.session.rollback()
                self.stripe_down = True  # stop calling a Stripe that does not answer; reconcile catches up
                log.warning("%s: Stripe unavailable at %s (%s); no more Stripe calls", self.job, item, exc)
                return None
        return None


def _claim_due_subscriptions(job: str, started: datetime) -> Iterator[int]:
    """Due subscriptions this worker claims, a batch at a time, until none is left unclaimed.

    The claim marks the rows for ``CLAIM_FOR``, so concurrent workers take different batches
    (PostgreSQL skips rows another worker is claiming at the same instant). A renewal clears its
    claim, so a subscription still due for a missed period is claimed again in the same pass;
    a dead worker's claims lapse after ``CLAIM_FOR``. Subscriptions in backoff are left alone.
    """
    while True:
        now = clock.now()
        backing_off = exists().where(
            JobItemFailure.job == job,
            JobItemFailure.item_id == Subscription.id,
            JobItemFailure.retry_at > now,
        )
        claimable = (
            select(Subscription.id)
            .where(
                Subscription.status == SubscriptionStatus.ACTIVE,
                Subscription.current_period_end <= started,
                or_(Subscription.renewal_claimed_until.is_(None), Subscription.renewal_claimed_until < now),
                ~backing_off,
            )
            .order_by(Subscription.current_period_end, Subscription.id)
            .limit(jobs.BATCH)
            .with_for_update(skip_locked=True)
        )
        claimed = list(
            db.session.scalars(
                update(Subscription)
                .where(Subscription.id.in_(claimable.scalar_subquery()))
                .values(renewal_claimed_until=now + CLAIM_FOR)
                .returning(Subscription.id),
                execution_options={"synchronize_session": False},
            )
        )
        db.session.commit()
        if not claimed:
            return
        yield from sorted(claimed)


def _release_claim(subscription_id: int) -> None:
    db.session.rollback()
    db.session.execute(
        update(Subscription).where(Subscription.id == subscription_id).values(renewal_claimed_until=None),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()


# --- the jobs -----------------------------------------------------------------------------------


@jobs.job("renew_due_subscriptions", order=20)
def renew_due_subscriptions() -> Counter[str]:
    """Renew every active subscription whose period ended by the time the pass started (catching
    up missed periods), and charge each new invoice."""
    with BillingRun("renew_due_subscriptions") as run:

        def renew_one(subscription_id: int) -> None:
            try:
                renewal = subscriptions.renew(subscription_id)
            except Exception:
                _release_claim(subscription_id)  # its backoff, not a lapsing claim, decides the retry
                raise
            run.counts[renewal.outcome] += 1
            if renewal.payment_id is not None:
                run.charge(renewal.payment_id)

        run.each(_claim_due_subscriptions(run.job, clock.now()), renew_one, "subscription")
    return run.counts


@jobs.job("schedule_stranded_invoices", order=30)
def schedule_stranded_invoices() -> Counter[str]:
    """Give every open invoice with no payment in flight and no retry scheduled a retry now.

    Renewals commit an invoice with its first attempt, so this should find nothing; it is the net
    under anything that ever leaves an invoice without a way to be collected. Invoices of
    subscriptions still waiting for their first 3-D Secure are left to expiry.
    """
    now = clock.now()
    in_flight = exists().where(Payment.invoice_id == Invoice.id, Payment.status.in_(IN_FLIGHT))
    awaiting_first_payment = exists().where(
        Subscription.id == Invoice.subscription_id, Subscription.status == SubscriptionStatus.INCOMPLETE
    )
    stranded = and_(
        Invoice.status == InvoiceStatus.OPEN,
        Invoice.next_attempt_at.is_(None),
        ~in_flight,
        ~and_(Invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE, awaiting_first_payment),
    )
    ids = list(db.session.scalars(select(Invoice.id).where(stranded).limit(jobs.BATCH * 5)))
    if not ids:
        db.session.rollback()
        return Counter()
    db.session.execute(
        update(Invoice).where(Invoice.id.in_(ids), stranded).values(next_attempt_at=now),
        execution_options={"synchronize_session": False},
    )
    db.session.commit()
    log.warning("open invoices with no way to be collected, retry scheduled now: %s", ids)
    return Counter(scheduled=len(ids))


@jobs.job("retry_failed_payments", order=40)
def retry_failed_payments() -> Counter[str]:
    """Dunning: charge each open invoice whose next retry is due, once per pass; one whose payment
    waits for the customer's bank is reminded instead, and ends unpaid after the last day."""
    started = clock.now()
    attempted: set[int] = set()
    with BillingRun("retry_failed_payments") as run:

        def retry(invoice_id: int) -> None:
            if invoice_id in attempted:
                return
            attempted.add(invoice_id)
            waiting = collection.waiting_payment(invoice_id)
            if waiting is not None:  # waiting for the customer's bank: remind, never charge again
                payment_id = waiting.id
                db.session.rollback()
                run.submit(lambda: follow_up(payment_id), invoice_id, "invoice")
                return
            try:
                payment = collection.open_attempt(db.session.get_one(Invoice, invoice_id))
                db.session.commit()
            except ChargeInProgress:
                db.session.rollback()
                run.counts["in_flight"] += 1
                return
            run.charge(payment.id)

        def follow_up(payment_id: int) -> str:
            outcome = run.call_stripe(
                lambda: collection.follow_up_waiting(payment_id), f"payment {payment_id}"
            )
            return "deferred" if outcome is None else f"action_{outcome}"

        due = jobs.ids_in_order(
            (Invoice.next_attempt_at, Invoice.id),  # type: ignore[arg-type]
            Invoice.status == InvoiceStatus.OPEN,
            Invoice.next_attempt_at <= started,
        )
        run.each(due, retry, "invoice")
    return run.counts


@jobs.job("expire_incomplete_subscriptions", order=50)
def expire_incomplete_subscriptions() -> Counter[str]:
    """End subscriptions whose first payment waited for 3-D Secure for too long."""
    cutoff = clock.now() - subscriptions.INCOMPLETE_EXPIRES_AFTER
    stale = list(
        db.session.scalars(
            select(Subscription.id).where(
                Subscription.status == SubscriptionStatus.INCOMPLETE, Subscription.created_at <= cutoff
            )
        )
    )
    db.session.rollback()
    with BillingRun("expire_incomplete_subscriptions") as run:

        def expire(subscription_id: int) -> None:
            ended = run.call_stripe(
                lambda: subscriptions.expire_incomplete(subscription_id), f"subscription {subscription_id}"
            )
            run.counts["deferred" if ended is None else "expired" if ended else "kept"] += 1

        run.each(stale, expire, "subscription")
    return run.counts


@jobs.job("reconcile_payments", order=10)
def reconcile_payments() -> Counter[str]:
    """Finish payments a crash or an outage left pending, by re-reading their PaymentIntent."""
    cutoff = clock.now() - RECONCILE_AFTER
    with BillingRun("reconcile_payments") as run:

        def settle(payment_id: int) -> str:
            payment = run.call_stripe(
                lambda: collection.drive(payment_id, customer_present=False), f"payment {payment_id}"
            )
            if payment is None:
                return "deferred"
            return "settled" if payment.status != PaymentStatus.PENDING else "still_pending"

        pending = jobs.ids_in_order(
            (Payment.created_at, Payment.id),
            Payment.status == PaymentStatus.PENDING,
            Payment.created_at <= cutoff,
        )

        def hand_over(payment_id: int) -> None:
            run.submit(lambda: settle(payment_id), payment_id, "payment")

        run.each(pending, hand_over, "payment", settles=False)
    return run.counts


@jobs.job("finish_pending_refunds", order=15)
def finish_pending_refunds() -> Counter[str]:
    """Finish refunds whose answer from Stripe was lost (a crash or an outage while refunding)."""
    try:
        return refunds.finish_pending()
    except GatewayUnavailable:
        db.session.rollback()
        return Counter(deferred=1)


@jobs.job("resume_paused_subscriptions", order=22)
def resume_paused_subscriptions() -> Counter[str]:
    """Resume every paused subscription whose pause is over (a new period and a charge; dunning if
    it fails), or end it if it was cancelled while paused."""
    with BillingRun("resume_paused_subscriptions") as run:

        def resume_one(subscription_id: int) -> None:
            outcome, payment_id = pause.resume_due(subscription_id)
            run.counts[outcome] += 1
            if payment_id is not None:
                run.charge(payment_id)

        run.each(pause.due_to_resume(), resume_one, "subscription")
    return run.counts


@jobs.job("remind_pause_ending", order=24)
def remind_pause_ending() -> Counter[str]:
    """The "your pause ends in 7 days" email, once per pause."""
    with jobs.ItemRun("remind_pause_ending") as run:

        def remind_one(subscription_id: int) -> None:
            run.counts["reminded" if pause.remind(subscription_id) else "skipped"] += 1

        run.each(pause.due_for_reminder(), remind_one, "subscription")
    return run.counts


@jobs.job("purge_after_restore_window", order=60)
def purge_after_restore_window() -> Counter[str]:
    """Delete ended customers' data once their restore window is over (each domain's purger)."""
    with jobs.ItemRun("purge_after_restore_window") as run:

        def purge_one(subscription_id: int) -> None:
            run.counts["purged" if retention.purge_after_window(subscription_id) else "skipped"] += 1

        run.each(retention.due_for_purge(), purge_one, "subscription")
    return run.counts


@jobs.job("mirror_billing_details", order=70)
def mirror_billing_details() -> Counter[str]:
    """Copy saved billing details (company, address, tax ID) to Stripe customers where the copy made
    at saving failed: Stripe down (``deferred``, tried next pass) or refusing (``errors``, with
    backoff and the reason on the profile). The copies run in the Stripe pool."""
    with BillingRun("mirror_billing_details") as run:

        def mirror(profile_id: int) -> str:
            outcome = run.call_stripe(
                lambda: profiles.mirror_to_stripe(profile_id), f"billing profile {profile_id}"
            )
            return "deferred" if outcome is None else str(outcome)

        def hand_over(profile_id: int) -> None:
            run.submit(lambda: mirror(profile_id), profile_id, "billing profile")

        run.each(profiles.profiles_due_for_mirror(), hand_over, "billing profile", settles=False)
    return run.counts


@jobs.job("reconcile_books", order=75)
def reconcile_books() -> Counter[str]:
    """Once every RECONCILE_EVERY_HOURS (its last run is kept; the other passes do nothing): compare
    the recent invoices with Stripe, book refunds made outside the portal, and email the
    differences to SUPPORT_EMAIL."""
    if not reconcile.due_to_run(clock.now()):
        return Counter()
    report = reconcile.reconcile(fix=True)
    if report.lines:
        notices.reconciliation_differences(report.lines + report.notes, report.days)
        db.session.commit()
    return Counter(checked=report.checked, differences=len(report.lines), fixed=report.fixed)
