"""Scheduled work: the job registry, one pass over every job, and the worker loop
(docs/architecture.md#8-scheduled-work).

Each domain registers its jobs with :func:`job` in its own ``jobs`` module (billing's renewals
and dunning, accounts' expired sessions, mail delivery, ...); ``create_app`` imports them.
``dicomportal tick`` runs :func:`run_once`; ``dicomportal worker`` runs :func:`run_forever`.

A job handles each of its items (a subscription, an invoice, a payment, a study) in its own
transaction through an :class:`ItemRun`: an item that fails unexpectedly is logged with its id,
counted in ``errors`` and retried with exponential backoff, while the pass goes on. Steps bound by
a slow remote service run in a bounded pool of threads, each with its own app context and
session. Every job returns a count per outcome.
"""

from __future__ import annotations

import logging
import threading
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import TracebackType

from flask import Flask, current_app
from sqlalchemy import ColumnElement, and_, delete, or_, select, true
from sqlalchemy.orm import InstrumentedAttribute

from dicomportal import clock
from dicomportal.extensions import db
from dicomportal.models import JobItemFailure

log = logging.getLogger(__name__)

BATCH = 200
BACKOFF_FIRST = timedelta(minutes=1)
BACKOFF_MAX = timedelta(hours=6)

Job = Callable[[], Counter[str]]


@dataclass(frozen=True, order=True)
class Registered:
    order: int
    name: str
    run: Job


_REGISTRY: dict[str, Registered] = {}


def job(name: str, order: int) -> Callable[[Job], Job]:
    """Register a job to run in every pass, in ``order`` (lower first)."""

    def register(fn: Job) -> Job:
        _REGISTRY[name] = Registered(order, name, fn)
        return fn

    return register


def registered() -> list[Registered]:
    """The jobs of a pass, in the order they run."""
    return sorted(_REGISTRY.values())


def run_once() -> dict[str, Counter[str]]:
    """One pass of every job at the clock's "now" (``dicomportal tick --now`` moves it first).

    A job that fails as a whole (its query, say) is logged and counted as ``job_failed``; the
    other jobs still run and it is tried again on the next pass.
    """
    results: dict[str, Counter[str]] = {}
    for entry in registered():
        try:
            results[entry.name] = entry.run()
        except Exception:
            db.session.rollback()
            log.exception("job %s failed", entry.name)
            results[entry.name] = Counter(job_failed=1)
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
        if any(n for counts in results.values() for n in counts.values()):  # only passes that did something
            log.info("worker pass: %s", "; ".join(describe(results)))
        db.session.remove()
        stop.wait(max(0.0, interval_seconds - (time.monotonic() - started)))


# --- one job's run over its items -----------------------------------------------------------------


class ItemRun:
    """One job's run over its items: outcome counts, per-item isolation and backoff, and a pool of
    ``concurrency`` threads for slow steps (1: steps run inline). Use as a context manager:
    leaving it waits for every step still in flight."""

    def __init__(self, job: str, concurrency: int = 1) -> None:
        self.job = job
        self.counts: Counter[str] = Counter()
        self._app: Flask = current_app._get_current_object()  # type: ignore[attr-defined]
        size = max(1, concurrency)
        self._pool = ThreadPoolExecutor(size, thread_name_prefix=job) if size > 1 else None
        self._slots = threading.BoundedSemaphore(2 * size)  # at most 2N steps queued or running
        self._running: dict[Future[str], tuple[str, int, bool]] = {}
        self._backoff = _backing_off(job)

    def __enter__(self) -> ItemRun:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._reap(wait_for_all=True)
        if self._pool is not None:
            self._pool.shutdown(wait=True)

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
                db.session.rollback()
                log.exception("%s: %s %s failed; it will be retried with backoff", self.job, what, item_id)
                self.counts["errors"] += 1
                record_failure(self.job, item_id, traceback.format_exc())
                continue
            if settles:
                self._clear_backoff(item_id)
            self._reap()

    def submit(self, step: Callable[[], str], item_id: int, what: str, backoff: bool = True) -> None:
        """Run ``step`` (it returns the outcome to count) in the pool, or here when the pool is 1.

        ``backoff``: an unexpected error puts the item into backoff (for items the job selects
        itself; not for a step another job will pick up again).
        """
        if self._pool is None:
            self._count(self._outcome(step), item_id, what, backoff)
            return
        self._slots.acquire()
        future = self._pool.submit(self._in_context, step)
        future.add_done_callback(lambda _f: self._slots.release())
        self._running[future] = (what, item_id, backoff)

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
                record_failure(self.job, item_id, "".join(traceback.format_exception(outcome)))
            return
        self.counts[outcome] += 1
        if backoff:
            self._clear_backoff(item_id)

    def _clear_backoff(self, item_id: int) -> None:
        if self._backoff.pop(item_id, None) is not None:
            key = (JobItemFailure.job == self.job, JobItemFailure.item_id == item_id)
            db.session.execute(delete(JobItemFailure).where(*key))
            db.session.commit()


# --- items that failed unexpectedly: backoff ------------------------------------------------------


def _backing_off(job: str) -> dict[int, datetime]:
    rows = db.session.execute(
        select(JobItemFailure.item_id, JobItemFailure.retry_at).where(JobItemFailure.job == job)
    ).all()
    db.session.rollback()
    return {item_id: retry_at for item_id, retry_at in rows}


def record_failure(job: str, item_id: int, error: str) -> None:
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


# --- which items ---------------------------------------------------------------------------------

Keys = tuple[InstrumentedAttribute[datetime], InstrumentedAttribute[int]]


def _after(keys: Keys, last: tuple[datetime, int] | None) -> ColumnElement[bool]:
    """Rows after ``last`` in (moment, id) order; every row when ``last`` is None."""
    if last is None:
        return true()
    moment, item_id = keys
    return or_(moment > last[0], and_(moment == last[0], item_id > last[1]))


def ids_in_order(keys: Keys, *where: ColumnElement[bool]) -> Iterator[int]:
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
