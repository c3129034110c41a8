"""Scheduled billing work, one function per job (ARCHITECTURE.md section 8).

Every job handles each item (a subscription, an invoice, a payment) in its own transaction and
sorts what goes wrong: Stripe unreachable -> the item is ``deferred`` (its payment stays pending
and the rest of the pass makes no more Stripe calls); Stripe refusing for good -> the payment is
``declined`` with Stripe's code and dunning takes over; anything unexpected -> logged with the
item's id, counted in ``errors`` and retried with exponential backoff, while the pass goes on.
Each job returns a count per outcome. ``run_once`` is one pass (``dicomportal tick``);
``run_forever`` is ``dicomportal worker``.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, true, update
from sqlalchemy.orm import InstrumentedAttribute

from dicomportal.billing import clock, collection, subscriptions
from dicomportal.billing.errors import ChargeInProgress, GatewayUnavailable
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

BATCH = 200
RECONCILE_AFTER = timedelta(minutes=2)
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)

CHARGE_OUTCOME = {
    PaymentStatus.SUCCEEDED: "charged",
    PaymentStatus.FAILED: "declined",
    PaymentStatus.REQUIRES_ACTION: "action_required",
    PaymentStatus.PENDING: "deferred",
    PaymentStatus.CANCELED: "canceled",
}


@dataclass
class Pass:
    """One job's run over its items: the outcome counts, and whether Stripe still answers."""

    job: str
    counts: Counter[str] = field(default_factory=Counter)
    stripe_down: bool = False

    def charge(self, payment_id: int) -> None:
        """Drive a committed pending payment and count its outcome; once Stripe has failed to
        answer in this pass, leave the payment pending (reconcile charges it later)."""
        if self.stripe_down:
            self.counts["deferred"] += 1
            return
        try:
            payment = collection.drive(payment_id, fresh=True)
        except GatewayUnavailable as exc:
            self.stripe_unreachable(exc, f"payment {payment_id}")
            self.counts["deferred"] += 1
            return
        self.counts[CHARGE_OUTCOME[payment.status]] += 1

    def stripe_unreachable(self, exc: GatewayUnavailable, item: str) -> None:
        db.session.rollback()
        self.stripe_down = True
        log.warning("%s: Stripe unavailable at %s (%s); no more Stripe calls this pass", self.job, item, exc)


# --- items that failed unexpectedly: backoff ------------------------------------------------------


def _backing_off(job: str, now: datetime) -> dict[int, datetime]:
    rows = db.session.execute(
        select(JobItemFailure.item_id, JobItemFailure.retry_at).where(JobItemFailure.job == job)
    ).all()
    db.session.rollback()
    return {item_id: retry_at for item_id, retry_at in rows}


def _record_failure(job: str, item_id: int, error: str) -> None:
    """Count one more failure of this item and push its next try out (1 min, 2, 4, ... 6 h)."""
    row = db.session.get(JobItemFailure, (job, item_id))
    if row is None:
        row = JobItemFailure(job=job, item_id=item_id, failures=0)
        db.session.add(row)
    row.failures += 1
    delay = min(BACKOFF_FIRST * 2 ** (row.failures - 1), BACKOFF_MAX)
    row.retry_at = clock.now() + delay
    row.last_error = error[-4000:]
    db.session.commit()


def _each(run: Pass, ids: Iterable[int], work: Callable[[int], None], what: str) -> None:
    """Call ``work`` for every item in its own transaction; one item's failure never stops the rest."""
    now = clock.now()
    backoff = _backing_off(run.job, now)
    for item_id in ids:
        if backoff.get(item_id, now) > now:
            run.counts["backing_off"] += 1
            continue
        try:
            work(item_id)
        except Exception:
            db.session.rollback()
            log.exception("%s: %s %s failed; it will be retried with backoff", run.job, what, item_id)
            run.counts["errors"] += 1
            _record_failure(run.job, item_id, traceback.format_exc())
            continue
        if item_id in backoff:
            db.session.execute(
                delete(JobItemFailure).where(JobItemFailure.job == run.job, JobItemFailure.item_id == item_id)
            )
            db.session.commit()


def _ids_in_order(keys: Keys, *where: ColumnElement[bool]) -> Iterator[int]:
    """Ids of the rows matching ``where`` in (moment, id) order, a batch at a time, each batch
    resuming after the last row read.

    An item whose moment moves past the last one read (a renewed subscription that is still due
    for a missed period) is met again later in the same pass; one that stays put is met once.
    """
    last: tuple[datetime, int] | None = None
    while True:
        query = select(*keys).where(*where, _after(keys, last)).order_by(*keys).limit(BATCH)
        rows = [(moment, item_id) for moment, item_id in db.session.execute(query)]
        db.session.rollback()  # release the snapshot; each item runs in its own transaction
        if not rows:
            return
        yield from (item_id for _moment, item_id in rows)
        last = rows[-1]


Keys = tuple[InstrumentedAttribute[datetime], InstrumentedAttribute[int]]


def _after(keys: Keys, last: tuple[datetime, int] | None) -> ColumnElement[bool]:
    """Rows after ``last`` in (moment, id) order; every row when ``last`` is None."""
    if last is None:
        return true()
    moment, item_id = keys
    return or_(moment > last[0], and_(moment == last[0], item_id > last[1]))


# --- the jobs -----------------------------------------------------------------------------------


def renew_due_subscriptions() -> Counter[str]:
    """Renew every active subscription whose period ended by the time the pass started (catching
    up missed periods), and charge each new invoice."""
    run = Pass("renew_due_subscriptions")
    started = clock.now()

    due = _ids_in_order(
        (Subscription.current_period_end, Subscription.id),
        Subscription.status == SubscriptionStatus.ACTIVE,
        Subscription.current_period_end <= started,
    )

    def renew_one(subscription_id: int) -> None:
        renewal = subscriptions.renew(subscription_id)
        run.counts[renewal.outcome] += 1
        if renewal.payment_id is not None:
            run.charge(renewal.payment_id)

    _each(run, due, renew_one, "subscription")
    return run.counts


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
    ids = list(db.session.scalars(select(Invoice.id).where(stranded).limit(BATCH * 5)))
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


def retry_failed_payments() -> Counter[str]:
    """Dunning: charge each open invoice whose next retry is due, once per pass."""
    run = Pass("retry_failed_payments")
    started = clock.now()

    due = _ids_in_order(
        (Invoice.next_attempt_at, Invoice.id),  # type: ignore[arg-type]
        Invoice.status == InvoiceStatus.OPEN,
        Invoice.next_attempt_at <= started,
    )
    attempted: set[int] = set()

    def retry(invoice_id: int) -> None:
        if invoice_id in attempted or run.stripe_down:
            run.counts["deferred" if run.stripe_down else "skipped"] += 1
            return
        attempted.add(invoice_id)
        try:
            payment = collection.open_attempt(db.session.get_one(Invoice, invoice_id))
            db.session.commit()
        except ChargeInProgress:
            db.session.rollback()
            run.counts["in_flight"] += 1
            return
        run.charge(payment.id)

    _each(run, due, retry, "invoice")
    return run.counts


def expire_incomplete_subscriptions() -> Counter[str]:
    """End subscriptions whose first payment waited for 3-D Secure for too long."""
    run = Pass("expire_incomplete_subscriptions")
    cutoff = clock.now() - subscriptions.INCOMPLETE_EXPIRES_AFTER
    stale = list(
        db.session.scalars(
            select(Subscription.id).where(
                Subscription.status == SubscriptionStatus.INCOMPLETE, Subscription.created_at <= cutoff
            )
        )
    )
    db.session.rollback()

    def expire(subscription_id: int) -> None:
        if run.stripe_down:
            run.counts["deferred"] += 1
            return
        try:
            run.counts["expired" if subscriptions.expire_incomplete(subscription_id) else "kept"] += 1
        except GatewayUnavailable as exc:
            run.stripe_unreachable(exc, f"subscription {subscription_id}")
            run.counts["deferred"] += 1

    _each(run, stale, expire, "subscription")
    return run.counts


def reconcile_payments() -> Counter[str]:
    """Finish payments a crash or an outage left pending, by re-reading their PaymentIntent."""
    run = Pass("reconcile_payments")
    cutoff = clock.now() - RECONCILE_AFTER

    pending = _ids_in_order(
        (Payment.created_at, Payment.id),
        Payment.status == PaymentStatus.PENDING,
        Payment.created_at <= cutoff,
    )

    def settle(payment_id: int) -> None:
        if run.stripe_down:
            run.counts["deferred"] += 1
            return
        try:
            payment = collection.drive(payment_id)
        except GatewayUnavailable as exc:
            run.stripe_unreachable(exc, f"payment {payment_id}")
            run.counts["deferred"] += 1
            return
        run.counts["settled" if payment.status != PaymentStatus.PENDING else "still_pending"] += 1

    _each(run, pending, settle, "payment")
    return run.counts


def deliver_mail() -> Counter[str]:
    from dicomportal.mail import deliver_pending

    return Counter(sent=deliver_pending())


JOBS: list[tuple[str, Callable[[], Counter[str]]]] = [
    ("reconcile_payments", reconcile_payments),
    ("renew_due_subscriptions", renew_due_subscriptions),
    ("schedule_stranded_invoices", schedule_stranded_invoices),
    ("retry_failed_payments", retry_failed_payments),
    ("expire_incomplete_subscriptions", expire_incomplete_subscriptions),
    ("deliver_mail", deliver_mail),
]


def run_once() -> dict[str, Counter[str]]:
    """One pass of every job at the clock's "now" (``dicomportal tick --now`` moves it first).

    A job that fails as a whole (its query, say) is logged and counted as ``job_failed``; the
    other jobs still run and it is tried again on the next pass.
    """
    results: dict[str, Counter[str]] = {}
    for name, job in JOBS:
        try:
            results[name] = job()
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", name)
            results[name] = Counter(job_failed=1)
    return results


def describe(results: dict[str, Counter[str]]) -> list[str]:
    """One line per job: ``renew_due_subscriptions: renewed=19 charged=18 declined=1``."""
    return [
        f"{name}: " + (" ".join(f"{k}={v}" for k, v in sorted(counts.items()) if v) or "nothing to do")
        for name, counts in results.items()
    ]


def run_forever(interval_seconds: float = 30.0, stop: threading.Event | None = None) -> None:
    """``dicomportal worker``: a pass every ``interval_seconds`` until ``stop`` is set."""
    stop = stop or threading.Event()
    while not stop.is_set():
        started = time.monotonic()
        results = run_once()
        if any(results.values()):
            log.info("worker pass: %s", "; ".join(describe(results)))
        db.session.remove()
        stop.wait(max(0.0, interval_seconds - (time.monotonic() - started)))
