"""The subscription lifecycle (docs/architecture.md#4-subscription-lifecycle): subscribe, renew,
and what a payment's outcome does to a subscription. Pause, plan changes and cancellation build
on these."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar, cast

from flask import current_app
from sqlalchemy import CursorResult, bindparam, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.exc import StaleDataError

from dicomportal import clock
from dicomportal.billing import audit, cards, collection, ending, extras
from dicomportal.billing.errors import (
    AlreadySubscribed,
    ChargeInProgress,
    GatewayUnavailable,
    PlanChangeNotAllowed,
    PlanNotAvailable,
)
from dicomportal.billing.invoicing import LineSpec, create_invoice, finalize, void
from dicomportal.billing.periods import next_period, period_boundary
from dicomportal.extensions import db
from dicomportal.models import (
    BillingReason,
    Invoice,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentMethod,
    PaymentStatus,
    Price,
    Subscription,
    SubscriptionStatus,
    User,
)

log = logging.getLogger(__name__)
T = TypeVar("T")


def live_subscription(user_id: int) -> Subscription | None:
    """The customer's subscription that has not ended, if any."""
    query = select(Subscription).where(
        Subscription.user_id == user_id, Subscription.status != SubscriptionStatus.ENDED
    )
    return db.session.scalar(query)


_LATEST = (
    select(Subscription)
    .where(Subscription.user_id == bindparam("user_id"))
    .options(
        joinedload(Subscription.price).joinedload(Price.plan),
        joinedload(Subscription.scheduled_price).joinedload(Price.plan),
    )
    .order_by((Subscription.status == SubscriptionStatus.ENDED).asc(), Subscription.id.desc())
    .limit(1)
)


def lock_own_subscription(user_id: int, subscription_id: int) -> Subscription:
    """The customer's subscription ``subscription_id``, locked for this transaction.

    The first statement is a write (it touches ``updated_at``), so on PostgreSQL concurrent
    requests about one subscription queue on its row lock and on SQLite on the write lock; each
    then reads what the one before it committed (a double-clicked "Confirm" sees the change done).

    :raises LookupError: no such subscription, or another customer's (views answer 404).
    """
    touched = db.session.execute(
        update(Subscription)
        .where(Subscription.id == subscription_id, Subscription.user_id == user_id)
        .values(updated_at=clock.now()),
        execution_options={"synchronize_session": False},
    )
    if not cast(CursorResult[Any], touched).rowcount:
        db.session.rollback()
        raise LookupError("no such subscription")
    query = (
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .options(joinedload(Subscription.price).joinedload(Price.plan))
        .execution_options(populate_existing=True)
    )
    return db.session.scalars(query).one()


def act_on_own(
    user_id: int,
    subscription_id: int,
    action: Callable[[Subscription], T],
    already: str = "That was already done.",
) -> T:
    """Run ``action`` on the customer's locked subscription and commit; on any error nothing is
    changed (domain errors reach the caller to be shown).

    :raises LookupError: not the customer's subscription.
    """
    subscription = lock_own_subscription(user_id, subscription_id)
    try:
        result = action(subscription)
        db.session.commit()
    except (StaleDataError, IntegrityError) as exc:
        db.session.rollback()
        raise PlanChangeNotAllowed(already) from exc
    except BaseException:
        db.session.rollback()
        raise
    return result


def latest_subscription(user_id: int) -> Subscription | None:
    """The live subscription, or else the most recent ended one, with its plan and any scheduled
    plan loaded in the same query."""
    return db.session.scalars(_LATEST, {"user_id": user_id}).first()


def sellable_price(price_id: int) -> Price:
    """:raises PlanNotAvailable: the price is unknown or no longer sold."""
    price = db.session.get(Price, price_id)
    if price is None or not price.active or not price.plan.active:
        raise PlanNotAvailable("That plan is not available. Please choose another.")
    return price


def plan_line(price: Price, start: object, end: object) -> LineSpec:
    every = "month" if price.interval.value == "month" else "year"
    return LineSpec(
        kind=LineKind.PLAN,
        description=f"{price.plan.name} plan, billed every {every}",
        amount_cents=price.amount_cents,
        price_id=price.id,
        period_start=start,  # type: ignore[arg-type]
        period_end=end,  # type: ignore[arg-type]
    )


def subscribe(user_id: int, price_id: int, setup_intent_id: str) -> Subscription:
    """Start a subscription with the card the customer just confirmed, and charge its first invoice.

    The subscription is ``active`` once the first payment succeeds, ``incomplete`` while the card
    needs 3-D Secure, and ``ended`` (invoice void) if the card is declined.

    :raises AlreadySubscribed: the customer has a subscription that has not ended (also on races).
    :raises PlanNotAvailable: the price is not on sale.
    :raises PaymentSetupFailed: the card was not confirmed.
    :raises CardDeclined: Stripe refused to save the card.
    """
    user = db.session.get_one(User, user_id)
    price = sellable_price(price_id)
    if live_subscription(user_id) is not None:
        raise AlreadySubscribed("You already have a subscription.")
    setup = cards.verified_setup(user, setup_intent_id)
    subscription = _claim_subscription(user, price)
    cards.save_default_card(user, setup.payment_method or "")
    invoice = _first_invoice(user, subscription, price)
    payment = collection.first_attempt(invoice)
    audit.record(
        "subscription.created", user.id, subscription, plan=price.plan.code, interval=price.interval.value
    )
    db.session.commit()
    if payment is not None:
        collect(payment.id, customer_present=True)
    db.session.refresh(subscription)
    return subscription


def _claim_subscription(user: User, price: Price) -> Subscription:
    """Insert the subscription first: the one-live-subscription index turns every concurrent
    duplicate into AlreadySubscribed before any card is attached or any invoice is made."""
    now = clock.now()
    subscription = Subscription(
        user_id=user.id,
        price_id=price.id,
        status=SubscriptionStatus.INCOMPLETE,
        current_period_start=now,
        current_period_end=period_boundary(now, price.interval, 1),
        billing_anchor=now,
    )
    db.session.add(subscription)
    try:
        db.session.flush()
    except IntegrityError as exc:
        db.session.rollback()
        raise AlreadySubscribed("You already have a subscription.") from exc
    return subscription


def _first_invoice(user: User, subscription: Subscription, price: Price) -> Invoice:
    period = (subscription.current_period_start, subscription.current_period_end)
    invoice = create_invoice(
        user, [plan_line(price, *period)], BillingReason.SUBSCRIPTION_CREATE, subscription, period
    )
    return finalize(invoice, current_app.config)


def collect(payment_id: int, *, customer_present: bool) -> Payment | None:
    """Charge a committed pending payment now; if Stripe is unreachable it stays pending and
    reconcile finishes it. Returns None in that case. ``customer_present``: see
    :func:`collection.drive` (a staff action or the worker is not the customer)."""
    try:
        return collection.drive(payment_id, fresh=True, customer_present=customer_present)
    except GatewayUnavailable:
        db.session.rollback()
        log.warning("charge of payment %s deferred: Stripe unavailable", payment_id)
        return None


@dataclass(frozen=True)
class Renewal:
    """What :func:`renew` did: ``renewed`` (with the payment to charge, if anything is due),
    ``ended`` (it was cancelled at period end), ``paused`` (a pause begins) or ``skipped`` (not
    due, or another worker has it)."""

    outcome: str
    invoice_id: int | None = None
    payment_id: int | None = None


def renew(subscription_id: int) -> Renewal:
    """Start the next period of a due subscription; charging is the caller's next step.

    The new period, its invoice and the invoice's first payment attempt are committed together,
    so a crash leaves either nothing or a pending payment that reconcile finishes. Safe on several
    workers at once: the row is locked (SKIP LOCKED on PostgreSQL) and the period is claimed with
    an optimistic version check first (SQLite), so a loser skips without error.
    """
    now = clock.now()
    subscription = db.session.scalar(
        select(Subscription)
        .where(Subscription.id == subscription_id)
        .options(
            joinedload(Subscription.price).joinedload(Price.plan),
            joinedload(Subscription.user).joinedload(User.billing_profile),
        )
        .with_for_update(of=Subscription, skip_locked=True)
        .execution_options(populate_existing=True)
    )
    if subscription is None or not subscription.is_due_for_renewal(now):
        db.session.rollback()
        return Renewal("skipped")
    try:
        if subscription.cancel_at_period_end:
            ending.end_at_period_end(subscription)
            db.session.commit()
            return Renewal("ended")
        if subscription.pause_starts_at is not None:
            subscription.status = SubscriptionStatus.PAUSED  # no invoice while paused (billing/pause.py)
            audit.record("subscription.paused", subscription.user_id, subscription)
            db.session.commit()
            return Renewal("paused")
        invoice = _next_period_invoice(subscription)
        payment = collection.first_attempt(invoice)
        db.session.flush()
        renewal = Renewal("renewed", invoice.id, payment.id if payment else None)
        db.session.commit()
    except (StaleDataError, IntegrityError):
        db.session.rollback()  # another worker renewed this period first
        return Renewal("skipped")
    return renewal


def _next_period_invoice(subscription: Subscription) -> Invoice:
    """Move to the next period (the first write: it claims the renewal), then bill it."""
    if subscription.scheduled_price_id is not None:
        subscription.price = db.session.get_one(Price, subscription.scheduled_price_id)
        subscription.scheduled_price_id = None
    price = subscription.price
    ended = (subscription.current_period_start, subscription.current_period_end)
    start, end_ = next_period(subscription.billing_anchor, price.interval, subscription.current_period_end)
    subscription.current_period_start, subscription.current_period_end = start, end_
    subscription.renewal_claimed_until = None  # a missed period still due can be claimed again
    db.session.flush()  # UPDATE ... WHERE version = <read>: a concurrent renewal loses here
    invoice = create_invoice(
        subscription.user,
        [plan_line(price, start, end_), *extras.renewal_lines(subscription, *ended)],
        BillingReason.SUBSCRIPTION_CYCLE,
        subscription,
        (start, end_),
    )
    audit.record("subscription.renewed", subscription.user_id, subscription, period_end=end_.isoformat())
    return finalize(invoice, current_app.config)


def begin_period(subscription: Subscription, reason: str, actor_id: int | None = None) -> int | None:
    """Start a new period from now, keeping the plan (resuming a pause, a restore), and bill it:
    the invoice and its first attempt are added to the caller's transaction. Returns the payment
    id to charge after the commit (None if nothing is due)."""
    now = clock.now()
    price = subscription.price
    ended = (subscription.current_period_start, subscription.current_period_end)
    subscription.status = SubscriptionStatus.ACTIVE
    subscription.billing_anchor = subscription.current_period_start = now
    subscription.current_period_end = period_boundary(now, price.interval, 1)
    subscription.pause_starts_at = subscription.pause_ends_at = None
    subscription.pause_reminder_sent_at = None
    db.session.flush()  # the versioned UPDATE first: a concurrent second start loses here
    period = (subscription.current_period_start, subscription.current_period_end)
    # what other domains bill (the storage add-on, extra credits of the period before) comes along
    lines = [plan_line(price, *period), *extras.renewal_lines(subscription, *ended)]
    invoice = create_invoice(subscription.user, lines, BillingReason.SUBSCRIPTION_CYCLE, subscription, period)
    finalize(invoice, current_app.config)
    payment = collection.first_attempt(invoice)
    db.session.flush()
    audit.record(
        f"subscription.{reason}",
        subscription.user_id,
        subscription,
        actor_id=actor_id,
        invoice=invoice.number,
    )
    return payment.id if payment is not None else None


INCOMPLETE_EXPIRES_AFTER = timedelta(hours=23)


def expire_incomplete(subscription_id: int) -> bool:
    """End a subscription whose first payment was never authenticated (3-D Secure abandoned).

    The waiting PaymentIntent is cancelled at Stripe first; if it turns out to have succeeded
    meanwhile, that success is recorded instead and the subscription stays. Returns True if ended.
    """
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None or not subscription.is_incomplete:
        return False
    if clock.now() - subscription.created_at < INCOMPLETE_EXPIRES_AFTER:
        return False
    invoices = db.session.scalars(select(Invoice).where(Invoice.subscription_id == subscription_id)).all()
    for invoice in invoices:
        collection.cancel_action_required(invoice.id)
    db.session.refresh(subscription)
    pending = any(p.status == PaymentStatus.PENDING for i in invoices for p in i.payments)
    if not subscription.is_incomplete or pending:
        return False  # paid after all, or an outcome is still unknown (reconcile first)
    for invoice in invoices:
        if invoice.status == InvoiceStatus.OPEN:
            void(invoice)
    subscription.status = SubscriptionStatus.ENDED
    subscription.ended_at = clock.now()
    subscription.ended_reason = "incomplete_expired"
    audit.record("subscription.incomplete_expired", subscription.user_id, subscription)
    db.session.commit()
    return True


def complete_authentication(user_id: int, payment_id: int) -> Payment:
    """After Stripe.js's 3-D Secure dialog: re-read the PaymentIntent and record what happened."""
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.invoice.user_id != user_id:
        raise LookupError("no such payment")
    if payment.status not in (PaymentStatus.REQUIRES_ACTION, PaymentStatus.PENDING):
        return payment
    return collection.drive(payment.id, customer_present=True)


def confirm_waiting_payment(user_id: int, payment_id: int) -> Payment:
    """The customer, on our page, confirms a payment the bank declined off-session until they
    authenticate: the same PaymentIntent, with the card it was tried with, customer present
    (docs/payments.md). The result is ``requires_action`` (the page opens the bank's dialog),
    paid, or declined.

    :raises LookupError: not one of the customer's payments.
    :raises GatewayUnavailable: Stripe did not answer; nothing changed.
    """
    payment = db.session.get(Payment, payment_id)
    if payment is None or payment.invoice.user_id != user_id:
        raise LookupError("no such payment")
    if not collection.needs_confirming_on_session(payment):
        return payment
    return collection.confirm_on_session(payment.id)


def card_of(payment: Payment) -> PaymentMethod | None:
    """The saved card a payment was tried with (for "Confirm with Visa ending 4242")."""
    if not payment.stripe_payment_method_id:
        return None
    query = select(PaymentMethod).where(
        PaymentMethod.stripe_payment_method_id == payment.stripe_payment_method_id,
        PaymentMethod.user_id == payment.invoice.user_id,
    )
    return db.session.scalar(query)


def replace_card_and_pay(user: User, setup_intent_id: str) -> list[Payment]:
    """Make the card the customer just confirmed their default (committed), then pay the open
    invoices with it ("update card and pay now").

    :raises PaymentSetupFailed: the SetupIntent is not this customer's or not confirmed.
    :raises CardDeclined: Stripe refused to save the card.
    """
    setup = cards.verified_setup(user, setup_intent_id)
    cards.save_default_card(user, setup.payment_method or "")
    db.session.commit()
    return pay_open_invoices(user.id)


def pay_open_invoices(user_id: int) -> list[Payment]:
    """Charge the customer's open invoices now with their default card ("update card and pay now")."""
    open_ids = db.session.scalars(
        select(Invoice.id).where(Invoice.user_id == user_id, Invoice.status == InvoiceStatus.OPEN)
    ).all()
    payments = []
    for invoice_id in open_ids:
        collection.cancel_action_required(invoice_id)
        try:
            payments.append(collection.charge_invoice(invoice_id, customer_present=True))
        except ChargeInProgress:
            continue  # an attempt already under way will settle this invoice
        except GatewayUnavailable:
            db.session.rollback()
            log.warning("pay now: Stripe unavailable, invoice %s stays open", invoice_id)
    return payments
