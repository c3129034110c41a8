"""Reconciliation: do the books equal the money? Each recent invoice against what Stripe holds.

For every invoice paid (or charged) in the last ``RECONCILE_DAYS`` days, a page of invoices at a
time, Stripe is asked for each PaymentIntent of its payments (with its charge, one call) and for
the refunds of the one that paid it (one call per 100 refunds), and every difference is reported
on one line naming the invoice and the amounts:

- a refund at Stripe with no credit note (made in the Stripe Dashboard, its webhook lost);
- a credit note we issued whose refund Stripe says failed or was canceled;
- an amount mismatch: what Stripe received or refunded is not what our payments and credit notes say;
- a payment we record as succeeded that Stripe does not, and a PaymentIntent Stripe says succeeded
  that we record as failed;
- an invoice that could not be checked (Stripe does not know its PaymentIntent, an error).

With ``fix``, what is safe to fix is fixed by the webhooks' own code path
(``stripe_refunds.settle``): a missing credit note is booked, a failed refund's credit note is
reversed; the line says so. Payments are never changed here: a mismatch there needs a person.

The run makes at most ``RECONCILE_MAX_STRIPE_CALLS`` calls (the report says what it did not
reach); Stripe unreachable ends the run early with a line saying so. One invoice that fails
unexpectedly is reported and the others are still checked.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, cast

from flask import current_app
from sqlalchemy import CursorResult, exists, or_, select, update
from sqlalchemy.exc import IntegrityError

from dicomportal import clock, jobs
from dicomportal.billing import gateway, stripe_refunds
from dicomportal.billing.errors import GatewayUnavailable, PaymentRejected
from dicomportal.billing.money import format_money
from dicomportal.extensions import db
from dicomportal.models import (
    IN_FLIGHT,
    CreditNote,
    CreditNoteStatus,
    Invoice,
    Payment,
    PaymentStatus,
    ScheduledRun,
)

log = logging.getLogger(__name__)

JOB = "reconcile_books"
SETTLED = ("booked", "reversed", "already_done")


class CallBudgetSpent(Exception):
    """This run made as many Stripe calls as it may."""


@dataclass
class Report:
    """What one reconciliation found: one line per difference."""

    days: int
    lines: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)  # not differences: what the run did not reach
    checked: int = 0
    fixed: int = 0
    stripe_calls: int = 0

    @property
    def books_agree(self) -> bool:
        return not self.lines


class _Run:
    def __init__(self, report: Report, max_calls: int, fix: bool) -> None:
        self.report, self.max_calls, self.fix = report, max_calls, fix

    def call(self, fn: Any, *args: Any, **kwargs: Any) -> Any:
        if self.report.stripe_calls >= self.max_calls:
            raise CallBudgetSpent
        self.report.stripe_calls += 1
        return fn(*args, **kwargs)


def recent_invoices(since: datetime) -> Iterator[int]:
    """Ids of the invoices paid since ``since`` or with a payment attempt since then, in pages."""
    charged = exists().where(
        Payment.invoice_id == Invoice.id,
        Payment.created_at >= since,
        Payment.stripe_payment_intent_id.is_not(None),
    )
    return jobs.ids_in_order(
        (Invoice.created_at, Invoice.id),
        Invoice.number.is_not(None),
        or_(Invoice.paid_at >= since, charged),
    )


def reconcile(fix: bool = False, days: int | None = None) -> Report:
    """Compare the recent invoices with Stripe (at the app's clock); with ``fix``, book what is
    safe to book. Returns the report."""
    config = current_app.config
    days = int(config.get("RECONCILE_DAYS", 35)) if days is None else days
    report = Report(days)
    run = _Run(report, int(config.get("RECONCILE_MAX_STRIPE_CALLS", 2000)), fix)
    left = 0
    for invoice_id in recent_invoices(clock.now() - timedelta(days=days)):
        if left or report.stripe_calls >= run.max_calls:
            left += 1
            continue
        try:
            _check(run, invoice_id)
            report.checked += 1
        except CallBudgetSpent:
            left += 1
        except GatewayUnavailable as exc:
            db.session.rollback()
            report.notes.append(f"Stripe did not answer ({exc}): the run stopped early")
            left += 1
        except Exception as exc:
            db.session.rollback()
            log.exception("reconcile: invoice %s could not be checked", invoice_id)
            report.lines.append(f"{_number(invoice_id)}: could not be checked ({type(exc).__name__}: {exc})")
    if left:
        report.notes.append(
            f"{left} invoice(s) not checked in this run (at most {run.max_calls} Stripe calls)"
        )
    return report


def _number(invoice_id: int) -> str:
    number = db.session.scalar(select(Invoice.number).where(Invoice.id == invoice_id))
    return str(number or f"invoice {invoice_id}")


def _check(run: _Run, invoice_id: int) -> None:
    invoice = db.session.get_one(Invoice, invoice_id)
    payments = db.session.scalars(
        select(Payment)
        .where(
            Payment.invoice_id == invoice_id,
            Payment.stripe_payment_intent_id.is_not(None),
            Payment.status.not_in(IN_FLIGHT),  # in flight: reconcile_payments finishes those
        )
        .order_by(Payment.attempt)
    ).all()
    facts = [(p.attempt, p.status, p.amount_cents, str(p.stripe_payment_intent_id)) for p in payments]
    number, currency = str(invoice.number), invoice.currency
    db.session.rollback()  # no transaction held while Stripe answers
    for attempt, status, amount, intent_id in facts:
        try:
            state = run.call(gateway.charge_state, intent_id)
        except PaymentRejected as exc:
            if not exc.not_found:
                raise
            run.report.lines.append(f"{number}: Stripe has no PaymentIntent {intent_id} (payment {attempt})")
            continue
        _compare_payment(run.report, number, currency, attempt, status, amount, state)
        if status == PaymentStatus.SUCCEEDED and state.intent.status == "succeeded":
            _compare_refunds(run, invoice_id, number, currency, state)


def _compare_payment(
    report: Report,
    number: str,
    currency: str,
    attempt: int,
    status: PaymentStatus,
    amount: int,
    state: gateway.ChargeState,
) -> None:
    at_stripe = state.intent.status
    if status == PaymentStatus.SUCCEEDED and at_stripe != "succeeded":
        report.lines.append(
            f"{number}: payment {attempt} of {format_money(amount, currency)} is recorded as succeeded, "
            f"but Stripe's PaymentIntent {state.intent.id} is {at_stripe}"
        )
    elif status != PaymentStatus.SUCCEEDED and at_stripe == "succeeded":
        report.lines.append(
            f"{number}: Stripe's PaymentIntent {state.intent.id} succeeded "
            f"({format_money(state.amount_received, currency)} received), "
            f"but payment {attempt} is recorded as {status.value}"
        )
    elif at_stripe == "succeeded" and state.amount_received != amount:
        report.lines.append(
            f"{number}: amount mismatch on payment {attempt}: Stripe received "
            f"{format_money(state.amount_received, currency)}, we recorded {format_money(amount, currency)}"
        )


def _compare_refunds(
    run: _Run, invoice_id: int, number: str, currency: str, state: gateway.ChargeState
) -> None:
    at_stripe = run.call(gateway.list_refunds, state.intent.id)
    invoice = db.session.get_one(Invoice, invoice_id, populate_existing=True)
    unresolved = 0  # what the gaps still left open move Stripe's refunded amount away from ours
    for gap in stripe_refunds.gaps(invoice_id, at_stripe):
        line = gap.describe(invoice)
        outcome = stripe_refunds.settle(gap) if run.fix else None
        if outcome is not None:
            line += f" [{outcome}]"
            run.report.fixed += outcome in ("booked", "reversed")
        if outcome not in SETTLED:
            unresolved += gap.refund.amount if gap.kind == "missing_credit_note" else -gap.refund.amount
        run.report.lines.append(line)
    db.session.rollback()
    issued = sum(
        db.session.scalars(
            select(CreditNote.total_cents).where(
                CreditNote.invoice_id == invoice_id,
                CreditNote.status == CreditNoteStatus.ISSUED,
                CreditNote.stripe_refund_id.is_not(None),
            )
        )
    )
    db.session.rollback()
    if state.amount_refunded != issued + unresolved:
        run.report.lines.append(
            f"{number}: amount mismatch on refunds: Stripe's charge refunded "
            f"{format_money(state.amount_refunded, currency)}, our credit notes "
            f"{format_money(issued, currency)}"
        )


# --- on a schedule ------------------------------------------------------------------------------


def due_to_run(now: datetime) -> bool:
    """Claim today's run (committed): True for the one worker whose pass starts it, once every
    ``RECONCILE_EVERY_HOURS``; the run's time is kept so 10-second passes do not call Stripe."""
    every = timedelta(hours=float(current_app.config.get("RECONCILE_EVERY_HOURS", 24)))
    try:
        with db.session.begin_nested():
            db.session.add(ScheduledRun(job=JOB, last_run_at=None))
    except IntegrityError:
        pass  # the row exists (or another worker just made it)
    claimed = db.session.execute(
        update(ScheduledRun)
        .where(
            ScheduledRun.job == JOB,
            or_(ScheduledRun.last_run_at.is_(None), ScheduledRun.last_run_at <= now - every),
        )
        .values(last_run_at=now)
    )
    db.session.commit()
    return cast(CursorResult[Any], claimed).rowcount == 1
