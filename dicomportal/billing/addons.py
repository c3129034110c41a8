"""Add-ons on a subscription (the catalog's extra storage): added now and charged for the rest of
the period like an upgrade, removed at the period's end, billed with every renewal on a line of
their own.

- Adding: one prorated invoice for the rest of the current period (``proration.unused_share``:
  whole UTC days, rounded down, as for plan changes), charged through the safe path (invoice and
  its first payment committed together, then collected); the add-on is in force at once. A
  declined charge goes through dunning like any other invoice.
- Removing: in force until the period ends (``ends_at``), not billed again; adding it back before
  then just keeps it (no second charge). The caller says how much is stored, so the removal is
  refused while that would not fit the quota without it.
- Renewals: :func:`renewal_lines` (registered with ``billing.extras``) bills each add-on still in
  force at the new period's start at the catalog price for the subscription's interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from dicomportal import clock
from dicomportal.billing import audit, collection
from dicomportal.billing.errors import BillingError
from dicomportal.billing.invoicing import LineSpec, create_invoice, finalize
from dicomportal.billing.proration import unused_share
from dicomportal.billing.subscriptions import collect, live_subscription
from dicomportal.extensions import db
from dicomportal.models import (
    AddOn,
    BillingReason,
    Interval,
    Invoice,
    LineKind,
    Subscription,
    SubscriptionAddOn,
)

GB = 1024**3


class AddOnRefused(BillingError):
    """The add-on cannot be added or removed now; the message says why. Nothing changed."""


@dataclass(frozen=True)
class AddOnOffer:
    """An add-on as the dashboard shows it: its price, what adding it now costs, and its state."""

    addon: AddOn
    prorated_cents: int  # charged now if added now
    period_end: datetime
    row: SubscriptionAddOn | None  # in force now (None: not added)

    @property
    def is_added(self) -> bool:
        return self.row is not None

    @property
    def ends_at(self) -> datetime | None:
        """When a removed add-on stops (None: it renews)."""
        return self.row.ends_at if self.row else None


def catalog_addon(code: str, subscription: Subscription, interval: Interval | None = None) -> AddOn:
    """The add-on ``code`` on sale for ``interval`` (default: the subscription's billing interval).

    :raises AddOnRefused: not on sale.
    """
    interval = interval or subscription.price.interval
    addon: AddOn | None = db.session.scalar(
        select(AddOn).where(AddOn.code == code, AddOn.interval == interval, AddOn.active.is_(True))
    )
    if addon is None:
        raise AddOnRefused("That add-on is not available.")
    return addon


def in_force(subscription_id: int, at: datetime) -> list[SubscriptionAddOn]:
    """The subscription's add-ons counted at ``at``."""
    rows = db.session.scalars(
        select(SubscriptionAddOn)
        .where(SubscriptionAddOn.subscription_id == subscription_id)
        .options(joinedload(SubscriptionAddOn.addon))
        .order_by(SubscriptionAddOn.id)
    )
    return [row for row in rows if row.in_force_at(at)]


def extra_storage_bytes(user_id: int) -> int:
    """Storage the customer's add-ons give on top of the plan, now."""
    subscription = live_subscription(user_id)
    if subscription is None or not subscription.grants_access:
        return 0
    return sum(row.addon.storage_gb * GB for row in in_force(subscription.id, clock.now()))


def _prorated(addon: AddOn, subscription: Subscription, now: datetime) -> int:
    # the rest of the period by whole UTC days, rounded down: the rule plan changes use
    return unused_share(
        addon.amount_cents, subscription.current_period_start, subscription.current_period_end, now
    )


def offers(user_id: int) -> list[AddOnOffer]:
    """Every add-on on sale for the customer's subscription, with its state (none without one)."""
    subscription = live_subscription(user_id)
    if subscription is None or not subscription.grants_access:
        return []
    now = clock.now()
    rows = {row.addon.code: row for row in in_force(subscription.id, now)}
    on_sale = db.session.scalars(
        select(AddOn)
        .where(AddOn.interval == subscription.price.interval, AddOn.active.is_(True))
        .order_by(AddOn.id)
    )
    return [
        AddOnOffer(
            addon, _prorated(addon, subscription, now), subscription.current_period_end, rows.get(addon.code)
        )
        for addon in on_sale
    ]


def _active_subscription(user_id: int) -> Subscription:
    subscription = live_subscription(user_id)
    if subscription is None or not subscription.is_active:
        raise AddOnRefused("Add-ons can be changed while your subscription is active.")
    return subscription


def add_addon(user_id: int, code: str) -> SubscriptionAddOn:
    """Add ``code`` now and charge the rest of the period; adding one that is being removed keeps
    it instead (no charge).

    :raises AddOnRefused: not active, not on sale, or already added.
    """
    subscription = _active_subscription(user_id)
    addon = catalog_addon(code, subscription)
    now = clock.now()
    current = next((row for row in in_force(subscription.id, now) if row.addon.code == code), None)
    if current is not None:
        if current.ends_at is None:
            raise AddOnRefused(f"{addon.name} is already on your subscription.")
        current.ends_at = None
        audit.record("addon.kept", user_id, subscription, addon=code)
        db.session.commit()
        return current
    row = SubscriptionAddOn(subscription_id=subscription.id, addon_id=addon.id, added_at=now)
    try:
        with db.session.begin_nested():
            db.session.add(row)
    except IntegrityError as exc:
        raise AddOnRefused(f"{addon.name} is already on your subscription.") from exc
    invoice = _prorated_invoice(subscription, addon, now)
    row.invoice = invoice
    payment = collection.first_attempt(invoice)
    audit.record("addon.added", user_id, subscription, addon=code, invoice_cents=invoice.total_cents)
    db.session.commit()
    if payment is not None:
        collect(payment.id, customer_present=True)  # the customer is adding it on our page
    return row


def _prorated_invoice(subscription: Subscription, addon: AddOn, now: datetime) -> Invoice:
    end = subscription.current_period_end
    line = LineSpec(
        kind=LineKind.ADDON,
        description=f"{addon.name}, {now:%-d %b} to {end:%-d %b %Y} (rest of the period)",
        amount_cents=_prorated(addon, subscription, now),
        period_start=now,
        period_end=end,
    )
    invoice = create_invoice(
        subscription.user, [line], BillingReason.SUBSCRIPTION_UPDATE, subscription, (now, end)
    )
    db.session.flush()
    return finalize(invoice, current_app.config)


def remove_addon(user_id: int, code: str, stored_bytes: int, quota_without_bytes: int) -> SubscriptionAddOn:
    """Remove ``code`` at the end of the current period (nothing more is charged for it).

    ``stored_bytes`` is what the customer keeps now and ``quota_without_bytes`` the quota they
    would have without this add-on (the studies domain knows both).

    :raises AddOnRefused: not added, or the stored data would not fit without it (with the numbers).
    """
    subscription = _active_subscription(user_id)
    now = clock.now()
    row = next(
        (r for r in in_force(subscription.id, now) if r.addon.code == code and r.ends_at is None), None
    )
    if row is None:
        raise AddOnRefused("That add-on is not on your subscription.")
    if stored_bytes > quota_without_bytes:
        raise AddOnRefused(
            f"Your studies use {_gb(stored_bytes)}; without {row.addon.name} your quota would be "
            f"{_gb(quota_without_bytes)}. Delete {_gb(stored_bytes - quota_without_bytes)} of studies first."
        )
    row.ends_at = subscription.current_period_end
    audit.record("addon.removed", user_id, subscription, addon=code, ends_at=row.ends_at.isoformat())
    db.session.commit()
    return row


def _gb(size: int) -> str:
    """Bytes as GB with one decimal, rounded up (so "use 5.1 GB" is never understated)."""
    tenths = -(-size * 10 // GB)
    return f"{tenths // 10}.{tenths % 10} GB"


def renewal_lines(subscription: Subscription, start: datetime, end: datetime) -> list[LineSpec]:
    """An ADDON line for each add-on still in force when the new period starts (the subscription's
    current period when a renewal asks; ``start``..``end`` is the period that ended)."""
    new_start, new_end = subscription.current_period_start, subscription.current_period_end
    lines = []
    for row in in_force(subscription.id, new_start):
        try:
            addon = catalog_addon(row.addon.code, subscription)  # today's price for this interval
        except AddOnRefused:
            addon = row.addon  # no longer on sale: it renews at the price it was bought at
        lines.append(_addon_line(addon, new_start, new_end))
    return lines


def _addon_line(addon: AddOn, start: datetime, end: datetime) -> LineSpec:
    """The invoice line of one period of ``addon``."""
    every = "month" if addon.interval.value == "month" else "year"
    return LineSpec(
        LineKind.ADDON,
        f"{addon.name}, billed every {every}",
        addon.amount_cents,
        period_start=start,
        period_end=end,
    )


def restart_lines(
    subscription: Subscription, interval: Interval, at: datetime, new_end: datetime
) -> list[LineSpec]:
    """The add-on lines of a period restarted at ``at`` on ``interval`` (a switch to annual billing):
    for each add-on that renews, a credit for its unused time in the current period (the rule of
    plan changes) and a charge for the new period at the catalog price for ``interval``. An add-on
    being removed is left to run out; nothing is credited or charged for it."""
    start, end = subscription.current_period_start, subscription.current_period_end
    lines = []
    for row in in_force(subscription.id, at):
        if row.ends_at is not None:
            continue
        paid = row.addon
        try:
            addon = catalog_addon(paid.code, subscription, interval)
        except AddOnRefused:
            continue  # not sold on that interval: it keeps running and renews as it is
        lines += [
            LineSpec(
                LineKind.CREDIT,
                f"Unused time on {paid.name}",
                -unused_share(paid.amount_cents, start, end, at),
            ),
            _addon_line(addon, at, new_end),
        ]
    return lines


def renewing_cents(subscription: Subscription, interval: Interval | None = None) -> int:
    """What the add-ons that renew add to the next renewal on ``interval`` (default: the current one)."""
    total = 0
    for row in in_force(subscription.id, clock.now()):
        if row.ends_at is not None:
            continue
        try:
            total += catalog_addon(row.addon.code, subscription, interval).amount_cents
        except AddOnRefused:
            total += row.addon.amount_cents if interval in (None, row.addon.interval) else 0
    return total
