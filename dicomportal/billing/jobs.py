"""Scheduled billing work, one function per job (ARCHITECTURE.md section 8).

Every job handles each item (a subscription, an invoice, a payment) in its own transaction and
sorts what goes wrong: Stripe unreachable -> the item is ``deferred`` (its payment stays pending
and the pass makes no more Stripe calls); Stripe refusing for good -> the payment is ``declined``
with Stripe's code and dunning takes over; Stripe rate limiting -> the call waits and is tried
again; anything unexpected -> logged with the item's id, counted in ``errors`` and retried with
exponential backoff, while the pass goes on. Each job returns a count per outcome.

Database work runs in the pass's own thread; the Stripe-bound step of each item (charging or
re-reading a payment) runs in a pool of ``STRIPE_CONCURRENCY`` threads, so real Stripe's latency
(hundreds of milliseconds a call) is paid that many at a time. Each step has its own app context,
session and transactions, exactly as it would have serially. Workers on several machines divide
the due subscriptions with a claim on each row (``renewal_claimed_until``, taken with
``FOR UPDATE SKIP LOCKED`` on PostgreSQL).

``run_once`` is one pass (``dicomportal tick``); ``run_forever`` is ``dicomportal worker``.
"""

from __future__ import annotations

import logging
import random
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from datetime import datetime, timedelta
from types import TracebackType
from typing import Any

from flask import current_app
from sqlalchemy import ColumnElement, and_, delete, exists, or_, select, true, update
from sqlalchemy.orm import InstrumentedAttribute

from dicomportal.billing import clock, collection, subscriptions
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

BATCH = 200
CLAIM_FOR = timedelta(minutes=10)
RECONCILE_AFTER = timedelta(minutes=2)
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)
RATE_LIMIT_RETRIES = 5
RATE_LIMIT_FIRST_WAIT = 0.5  # seconds, doubled each time, with jitter

CHARGE_OUTCOME = {
    PaymentStatus.SUCCEEDED: "charged",
    PaymentStatus.FAILED: "declined",
    PaymentStatus.REQUIRES_ACTION: "action_required",
    PaymentStatus.PENDING: "deferred",
    PaymentStatus.CANCELED: "canceled",
}


class Pass:
    """One job's run over its items: outcome counts, the Stripe pool, and whether Stripe answers.

    Use as a context manager: leaving it waits for every Stripe step still in flight.
    """

    def __init__(self, job: str) -> None:
        self.job = job
        self.counts: Counter[str] = Counter()
        self.stripe_down = False
        self._app = current_app._get_current_object()  # type: ignore[attr-defined]
        size = max(1, int(self._app.config.get("STRIPE_CONCURRENCY", 1)))
        self._pool = ThreadPoolExecutor(size, thread_name_prefix=f"{job}-stripe") if size > 1 else None
        self._slots = threading.BoundedSemaphore(2 * size)  # bounded: at most 2N steps queued or running
        self._running: dict[Future[str], tuple[str, int, bool]] = {}
        self._backoff = _backing_off(job)

    def __enter__(self) -> Pass:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._reap(wait_for_all=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

    # --- the pass's own thread: database work, one transaction per item ------------------------

    def each(self, ids: Iterable[int], work: Callable[[int], None], what: str, settles: bool = True) -> None:
        """Call ``work`` for every item in its own transaction; one item's failure stops nothing.

        ``settles``: ``work`` finishes the item (False when it only hands a step to the pool,
        which then answers for the item's backoff).
        """
        now = clock.now()
        for item_id in ids:
            if self._backoff.get(item_id, now) > now:
                self.counts["backing_off"] += 1
                continue
            try:
                work(item_id)
            except Exception:
                self._failed(item_id, what)
                continue
            if settles:
                self._clear_backoff(item_id)
            self._reap()

    # --- Stripe-bound steps, N at a time --------------------------------------------------------

    def charge(self, payment_id: int) -> None:
        """Drive a committed pending payment and count its outcome (in the pool)."""
        self.submit(lambda: self._charge(payment_id), payment_id, "payment", backoff=False)

    def _charge(self, payment_id: int) -> str:
        payment = self.call_stripe(lambda: collection.drive(payment_id, fresh=True), f"payment {payment_id}")
        return "deferred" if payment is None else CHARGE_OUTCOME[payment.status]

    def submit(self, step: Callable[[], str], item_id: int, what: str, backoff: bool = True) -> None:
        """Run ``step`` (it returns the outcome to count) in the pool, or here when the pool is 1.

        ``backoff``: an unexpected error puts the item into backoff (for items a job selects
        itself; a charge left pending is reconcile's to retry).
        """
        if self._pool is None:
            self._count(self._outcome(step), item_id, what, backoff)
            return
        self._slots.acquire()
        future = self._pool.submit(self._in_context, step)
        future.add_done_callback(lambda _f: self._slots.release())
        self._running[future] = (what, item_id, backoff)

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

    def _in_context(self, step: Callable[[], str]) -> str:
        with self._app.app_context():
            return step()

    def _outcome(self, step: Callable[[], str]) -> str | Exception:
        try:
            return step()
        except Exception as exc:
            db.session.rollback()
            return exc

    def _reap(self, wait_for_all: bool = False) -> None:
        """Count the steps that have finished (all of them when ``wait_for_all``)."""
        while self._running:
            done, _ = wait(self._running, timeout=None if wait_for_all else 0, return_when=FIRST_COMPLETED)
            if not done:
                return
            for future in done:
                what, item_id, backoff = self._running.pop(future)
                error = future.exception()
                if error is not None and not isinstance(error, Exception):
                    raise error  # the process is going down (a BaseException): let it
                self._count(error if error is not None else future.result(), item_id, what, backoff)

    def _count(self, outcome: str | Exception, item_id: int, what: str, backoff: bool) -> None:
        if isinstance(outcome, Exception):
            log.error("%s: %s %s failed", self.job, what, item_id, exc_info=outcome)
            self.counts["errors"] += 1
            if backoff:
                _record_failure(self.job, item_id, "".join(traceback.format_exception(outcome)))
            return
        self.counts[outcome] += 1
        if backoff:
            self._clear_backoff(item_id)

    def _failed(self, item_id: int, what: str) -> None:
        db.session.rollback()
        log.exception("%s: %s %s failed; it will be retried with backoff", self.job, what, item_id)
        self.counts["errors"] += 1
        _record_failure(self.job, item_id, traceback.format_exc())

    def _clear_backoff(self, item_id: int) -> None:
        if self._backoff.pop(item_id, None) is not None:
            db.session.execute(
                delete(JobItemFailure).where(
                    JobItemFailure.job == self.job, JobItemFailure.item_id == item_id
                )
            )
            db.session.commit()


# --- items that failed unexpectedly: backoff ------------------------------------------------------


def _backing_off(job: str) -> dict[int, datetime]:
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


# --- which items -----------------------------------------------------------------------------------

Keys = tuple[InstrumentedAttribute[datetime], InstrumentedAttribute[int]]


def _after(keys: Keys, last: tuple[datetime, int] | None) -> ColumnElement[bool]:
    """Rows after ``last`` in (moment, id) order; every row when ``last`` is None."""
    if last is None:
        return true()
    moment, item_id = keys
    return or_(moment > last[0], and_(moment == last[0], item_id > last[1]))


def _ids_in_order(keys: Keys, *where: ColumnElement[bool]) -> Iterator[int]:
    """Ids of the rows matching ``where`` in (moment, id) order, a batch at a time, each batch
    resuming after the last row read (so each row is met once, however the others change)."""
    last: tuple[datetime, int] | None = None
    while True:
        query = select(*keys).where(*where, _after(keys, last)).order_by(*keys).limit(BATCH)
        rows = [(moment, item_id) for moment, item_id in db.session.execute(query)]
        db.session.rollback()  # release the snapshot; each item runs in its own transaction
        if not rows:
            return
        yield from (item_id for _moment, item_id in rows)
        last = rows[-1]


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
            .limit(BATCH)
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


def renew_due_subscriptions() -> Counter[str]:
    """Renew every active subscription whose period ended by the time the pass started (catching
    up missed periods), and charge each new invoice."""
    with Pass("renew_due_subscriptions") as run:

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
    started = clock.now()
    attempted: set[int] = set()
    with Pass("retry_failed_payments") as run:

        def retry(invoice_id: int) -> None:
            if invoice_id in attempted:
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

        due = _ids_in_order(
            (Invoice.next_attempt_at, Invoice.id),  # type: ignore[arg-type]
            Invoice.status == InvoiceStatus.OPEN,
            Invoice.next_attempt_at <= started,
        )
        run.each(due, retry, "invoice")
    return run.counts


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
    with Pass("expire_incomplete_subscriptions") as run:

        def expire(subscription_id: int) -> None:
            ended = run.call_stripe(
                lambda: subscriptions.expire_incomplete(subscription_id), f"subscription {subscription_id}"
            )
            run.counts["deferred" if ended is None else "expired" if ended else "kept"] += 1

        run.each(stale, expire, "subscription")
    return run.counts


def reconcile_payments() -> Counter[str]:
    """Finish payments a crash or an outage left pending, by re-reading their PaymentIntent."""
    cutoff = clock.now() - RECONCILE_AFTER
    with Pass("reconcile_payments") as run:

        def settle(payment_id: int) -> str:
            payment = run.call_stripe(lambda: collection.drive(payment_id), f"payment {payment_id}")
            if payment is None:
                return "deferred"
            return "settled" if payment.status != PaymentStatus.PENDING else "still_pending"

        pending = _ids_in_order(
            (Payment.created_at, Payment.id),
            Payment.status == PaymentStatus.PENDING,
            Payment.created_at <= cutoff,
        )

        def hand_over(payment_id: int) -> None:
            run.submit(lambda: settle(payment_id), payment_id, "payment")

        run.each(pending, hand_over, "payment", settles=False)
    return run.counts


def purge_expired_sessions() -> Counter[str]:
    """Delete login sessions past their lifetime (they no longer open anything)."""
    from dicomportal.accounts import purge_expired_sessions as purge

    return Counter(purged=purge())


def deliver_mail() -> Counter[str]:
    from dicomportal.mail import deliver_pending

    return Counter(sent=deliver_pending())


JOBS: list[tuple[str, Callable[[], Counter[str]]]] = [
    ("reconcile_payments", reconcile_payments),
    ("renew_due_subscriptions", renew_due_subscriptions),
    ("schedule_stranded_invoices", schedule_stranded_invoices),
    ("retry_failed_payments", retry_failed_payments),
    ("expire_incomplete_subscriptions", expire_incomplete_subscriptions),
    ("purge_expired_sessions", purge_expired_sessions),
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
