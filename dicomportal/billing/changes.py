"""Changing plan or billing interval: the preview and the change
(docs/architecture.md#4-subscription-lifecycle).

- Upgrade (a higher plan, same interval): now; the unused time on the old plan is credited and
  the rest of the period on the new one charged, on one invoice collected at once. Period unchanged.
- Downgrade (a lower plan, same interval): scheduled for the period end, no refund; withdrawable.
- Monthly -> annual: now; the unused monthly time is credited and a new annual period starts today.
- Annual -> monthly: scheduled for the period end.

The preview and the invoice are built by the same function (:func:`quote`), and the customer
confirms the total they saw: if it no longer holds (midnight passed), nothing is charged.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from datetime import datetime

from flask import current_app

from dicomportal import clock
from dicomportal.billing import addons, audit, catalog, collection, subscriptions
from dicomportal.billing.errors import PlanChangeNotAllowed, PreviewOutdated
from dicomportal.billing.invoicing import LineSpec, create_invoice, finalize
from dicomportal.billing.periods import period_boundary
from dicomportal.billing.proration import Totals, days_left, prorate, totals
from dicomportal.billing.tax import tax_for
from dicomportal.extensions import db
from dicomportal.models import BillingReason, Interval, LineKind, PaymentStatus, Price, Subscription


class ChangeKind(enum.StrEnum):
    UPGRADE = "upgrade"
    DOWNGRADE = "downgrade"
    TO_ANNUAL = "to_annual"
    TO_MONTHLY = "to_monthly"


@dataclass(frozen=True)
class Quote:
    """What a change would do: charged now (``lines``, ``charge``) or scheduled for ``effective_on``,
    and what the next renewal will cost."""

    subscription_id: int
    current: Price
    target: Price
    kind: ChangeKind
    effective_on: datetime
    lines: tuple[LineSpec, ...]
    charge: Totals
    renews_on: datetime
    renewal: Totals
    annual_saving_cents: int
    # After confirming a change effective now: SUCCEEDED, FAILED (dunning retries it),
    # REQUIRES_ACTION, or None when nothing was due or Stripe's answer is not known yet.
    payment_status: PaymentStatus | None = None

    @property
    def effective_now(self) -> bool:
        return self.kind in (ChangeKind.UPGRADE, ChangeKind.TO_ANNUAL)

    @property
    def gained_features(self) -> list[str]:
        """Feature lines of a higher plan the current one lacks (storage and credits are shown
        apart; a plan's lines build on the lower plans', so only moving up gains and down loses)."""
        if self.target.plan.rank <= self.current.plan.rank:
            return []
        had = set(catalog.marketing_features(self.current.plan))
        return [f for f in catalog.marketing_features(self.target.plan) if f not in had]

    @property
    def lost_features(self) -> list[str]:
        """Feature lines of the current plan a lower plan does not list."""
        if self.target.plan.rank >= self.current.plan.rank:
            return []
        keeps = set(catalog.marketing_features(self.target.plan))
        return [f for f in catalog.marketing_features(self.current.plan) if f not in keeps]


def classify(current: Price, target: Price) -> ChangeKind:
    """:raises PlanChangeNotAllowed: ``target`` is the plan and interval the customer has."""
    if current.plan_id == target.plan_id and current.interval == target.interval:
        raise PlanChangeNotAllowed(f"You're already on the {current.plan.name} plan, billed that way.")
    if current.interval != target.interval:
        return ChangeKind.TO_ANNUAL if target.interval == Interval.YEAR else ChangeKind.TO_MONTHLY
    return ChangeKind.UPGRADE if target.plan.rank > current.plan.rank else ChangeKind.DOWNGRADE


def check_changeable(subscription: Subscription) -> None:
    """:raises PlanChangeNotAllowed: the subscription's state does not allow a change now."""
    if not subscription.is_active:
        state = "paused" if subscription.is_paused else "not active"
        raise PlanChangeNotAllowed(f"Your subscription is {state}, so its plan cannot be changed now.")
    if subscription.cancel_at_period_end:
        raise PlanChangeNotAllowed("Your subscription is set to end. Undo the cancellation first.")
    if subscription.pause_starts_at is not None:
        raise PlanChangeNotAllowed("Your subscription is set to pause. Resume it first.")


def quote(subscription: Subscription, target: Price, at: datetime | None = None) -> Quote:
    """The preview of changing ``subscription`` to ``target`` at ``at`` (default now).

    :raises PlanChangeNotAllowed: same plan, or the subscription cannot change now.
    :raises PlanNotAvailable: ``target`` is not on sale (checked by the caller via sellable_price).
    """
    check_changeable(subscription)
    at = at or clock.now()
    current = subscription.price
    kind = classify(current, target)
    rate = tax_for(subscription.user.billing_profile, current_app.config).rate_bp
    start, end = subscription.current_period_start, subscription.current_period_end
    lines: tuple[LineSpec, ...] = ()
    effective_on, renews_on = end, end
    if kind in (ChangeKind.UPGRADE, ChangeKind.TO_ANNUAL):
        effective_on = at
        left, whole = days_left(start, end, at)
        credit = LineSpec(
            LineKind.CREDIT, f"Unused time on {_label(current)}", -prorate(current.amount_cents, left, whole)
        )
        if kind == ChangeKind.UPGRADE:
            charge = LineSpec(
                LineKind.PRORATION,
                f"Remaining time on {_label(target)}",
                prorate(target.amount_cents, left, whole),
                price_id=target.id,
                period_start=at,
                period_end=end,
            )
        else:
            renews_on = period_boundary(at, Interval.YEAR, 1)
            charge = subscriptions.plan_line(target, at, renews_on)
        lines = (credit, charge)
        if kind == ChangeKind.TO_ANNUAL:  # add-ons restart on the new period with the plan
            lines += tuple(addons.restart_lines(subscription, Interval.YEAR, at, renews_on))
    monthly = target.plan.active_price(Interval.MONTH)
    saving = (
        12 * monthly.amount_cents - target.amount_cents if kind == ChangeKind.TO_ANNUAL and monthly else 0
    )
    return Quote(
        subscription_id=subscription.id,
        current=current,
        target=target,
        kind=kind,
        effective_on=effective_on,
        lines=lines,
        charge=totals([line.amount_cents for line in lines], rate),
        renews_on=renews_on,
        renewal=totals([target.amount_cents, addons.renewing_cents(subscription, target.interval)], rate),
        annual_saving_cents=max(saving, 0),
    )


def _label(price: Price) -> str:
    return f"{price.plan.name} ({'annual' if price.interval == Interval.YEAR else 'monthly'})"


def preview(user_id: int, subscription_id: int, price_id: int) -> Quote:
    """The quote for the customer's own subscription (read only).

    :raises LookupError: not the customer's subscription.
    :raises PlanChangeNotAllowed, PlanNotAvailable: see :func:`quote`.
    """
    subscription = db.session.get(Subscription, subscription_id)
    if subscription is None or subscription.user_id != user_id:
        raise LookupError("no such subscription")
    return quote(subscription, subscriptions.sellable_price(price_id))


def change_plan(user_id: int, subscription_id: int, price_id: int, seen_total_cents: int | None) -> Quote:
    """Apply the change the customer previewed: now (invoice charged at once) or at period end.

    Concurrent confirmations queue on the subscription's lock; the first applies the change, the
    others then find the customer already on that plan (one invoice, one charge).

    :raises LookupError: not the customer's subscription.
    :raises PlanChangeNotAllowed: same plan, or the subscription cannot change now.
    :raises PlanNotAvailable: the price is not on sale.
    :raises PreviewOutdated: the amount now differs from ``seen_total_cents``.
    """

    def apply(subscription: Subscription) -> tuple[Quote, int | None]:
        change = quote(subscription, subscriptions.sellable_price(price_id))
        if (
            change.effective_now
            and seen_total_cents is not None
            and seen_total_cents != change.charge.total_cents
        ):
            raise PreviewOutdated("The amount has changed since you saw it. Please check the new preview.")
        if change.effective_now:
            return change, _apply_now(subscription, change)
        _schedule(subscription, change)
        return change, None

    change, payment = subscriptions.act_on_own(
        user_id, subscription_id, apply, already="That change has already been made."
    )
    if payment is None:
        return change
    charged = subscriptions.collect(payment, customer_present=True)
    return replace(change, payment_status=charged.status if charged is not None else None)


def _schedule(subscription: Subscription, change: Quote) -> None:
    subscription.scheduled_price_id = change.target.id
    audit.record(
        "subscription.change_scheduled",
        subscription.user_id,
        subscription,
        to_price=change.target.id,
        on=change.effective_on.isoformat(),
    )


def _apply_now(subscription: Subscription, change: Quote) -> int | None:
    """Switch the plan (the versioned UPDATE goes first), then bill the difference."""
    at = change.effective_on
    subscription.price_id = change.target.id
    subscription.scheduled_price_id = None
    if change.kind == ChangeKind.TO_ANNUAL:
        subscription.current_period_start, subscription.current_period_end = at, change.renews_on
        subscription.billing_anchor = at
    db.session.flush()
    invoice = create_invoice(
        subscription.user,
        list(change.lines),
        BillingReason.SUBSCRIPTION_UPDATE,
        subscription,
        (at, subscription.current_period_end),
    )
    finalize(invoice, current_app.config)
    payment = collection.first_attempt(invoice)
    db.session.flush()
    audit.record(
        f"subscription.{change.kind.value}",
        subscription.user_id,
        subscription,
        from_price=change.current.id,
        to_price=change.target.id,
        invoice=invoice.number,
    )
    return payment.id if payment is not None else None


def withdraw_scheduled_change(user_id: int, subscription_id: int) -> None:
    """Keep the current plan after all (a scheduled downgrade or switch to monthly).

    :raises LookupError: not the customer's subscription.
    :raises PlanChangeNotAllowed: no change is scheduled.
    """
    subscription = subscriptions.lock_own_subscription(user_id, subscription_id)
    if subscription.scheduled_price_id is None or subscription.has_ended:
        db.session.rollback()
        raise PlanChangeNotAllowed("No plan change is scheduled.")
    audit.record(
        "subscription.change_withdrawn", user_id, subscription, to_price=subscription.scheduled_price_id
    )
    subscription.scheduled_price_id = None
    db.session.commit()


@dataclass(frozen=True)
class Option:
    """A plan and interval the customer can move to, and whether that happens now or at period end."""

    price: Price
    kind: ChangeKind

    @property
    def effective_now(self) -> bool:
        return self.kind in (ChangeKind.UPGRADE, ChangeKind.TO_ANNUAL)


def options(subscription: Subscription) -> list[Option]:
    """Every price on sale the subscription could change to, cheapest plan first, monthly first."""
    found = []
    for plan in catalog.active_plans():
        for interval in (Interval.MONTH, Interval.YEAR):
            price = plan.active_price(interval)
            if price is None or (
                plan.id == subscription.price.plan_id and interval == subscription.price.interval
            ):
                continue
            found.append(Option(price, classify(subscription.price, price)))
    return found


def cheaper_plans(subscription: Subscription) -> list[Price]:
    """Lower plans at the same interval (the cancel dialog's "switch to a cheaper plan")."""
    return [o.price for o in options(subscription) if o.kind == ChangeKind.DOWNGRADE]
