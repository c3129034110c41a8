"""Processing credits: the plan's credits for each period, spent on building a stored study's 3D view
and on each STL export, and extra credits beyond them only with the customer's consent, never
beyond the monthly cap they chose. Every grant and use is a row of the ledger (``CreditEntry``).

- Each period of the subscription is granted the plan's monthly credits (twelve months' worth for
  a yearly period), the first time the balance is read in it; unused credits do not carry over
  (the balance counts only the current period's entries).
- While paused nothing is granted or spent (the period does not move: the credits left wait for
  the resume, which starts a new period with a fresh grant).
- When the included credits are used up the customer is told once per period (email; the page
  shows a banner while it lasts), with the catalog's price per extra credit.
- Extra credits used in a period become an overage line (quantity x unit price) on the invoice
  that renews it (:func:`overage_lines`, registered with ``billing.extras``).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, exists, func, select
from sqlalchemy.exc import IntegrityError

from dicomportal import clock
from dicomportal.billing import audit
from dicomportal.billing.invoicing import LineSpec
from dicomportal.billing.money import format_money
from dicomportal.billing.subscriptions import live_subscription
from dicomportal.extensions import db
from dicomportal.mail import absolute_url, queue_email
from dicomportal.models import (
    CreditEntry,
    CreditKind,
    Interval,
    LineKind,
    OverageAllowance,
    OverageRate,
    Subscription,
)
from dicomportal.studies.errors import StudiesError

CREDIT_RATE_CODE = "processing-credit"
BUILD_3D = "3d"
EXPORT_STL = "stl"
ACTION_NAMES = {BUILD_3D: "Building the 3D view", EXPORT_STL: "An STL export"}


class CreditsUnavailable(StudiesError):
    """No credit can be spent now (no subscription with access, or it is paused)."""


class CreditsExhausted(StudiesError):
    """The included credits are used up and the overage allowance (if any) would go over its cap."""


@dataclass(frozen=True)
class CreditBalance:
    """What the customer has in the current period."""

    granted: int
    used: int
    extra_used: int
    unit_amount_cents: int  # the catalog's price of one extra credit
    cap_cents: int  # the customer's monthly cap for extra credits (0: not allowed)
    accepted_unit_cents: int  # the price the customer accepted with the cap
    period_end: datetime
    paused: bool = False

    @property
    def left(self) -> int:
        return max(0, self.granted - self.used)

    @property
    def extra_left(self) -> int:
        """How many more extra credits the cap allows this period."""
        if self.cap_cents <= 0 or self.accepted_unit_cents <= 0:
            return 0
        return max(0, self.cap_cents // self.accepted_unit_cents - self.extra_used)

    @property
    def extra_spent_cents(self) -> int:
        return self.extra_used * self.accepted_unit_cents

    @property
    def used_up(self) -> bool:
        """The included credits are all used: the banner shows."""
        return not self.paused and self.left == 0

    @property
    def can_spend(self) -> bool:
        return not self.paused and (self.left > 0 or self.extra_left > 0)

    @property
    def unit_price(self) -> str:
        return format_money(self.unit_amount_cents, "USD")


def credit_rate() -> OverageRate | None:
    """The catalog's price of one extra processing credit."""
    return db.session.scalar(
        select(OverageRate).where(OverageRate.code == CREDIT_RATE_CODE, OverageRate.active.is_(True))
    )


def _grant_for(subscription: Subscription) -> int:
    monthly = subscription.price.plan.monthly_credits
    return monthly * 12 if subscription.price.interval == Interval.YEAR else monthly


def _ensure_grant(subscription: Subscription) -> None:
    """The period's grant, once (a concurrent grant of the same period loses on the unique key)."""
    entry = CreditEntry(
        user_id=subscription.user_id,
        subscription_id=subscription.id,
        period_start=subscription.current_period_start,
        kind=CreditKind.GRANT,
        seq=1,
        quantity=_grant_for(subscription),
        created_at=clock.now(),
    )
    granted = db.session.scalar(
        select(exists().where(*_in_period(subscription), CreditEntry.kind == "grant"))
    )
    if granted:
        return
    try:
        with db.session.begin_nested():
            db.session.add(entry)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()


def _in_period(subscription: Subscription) -> tuple[ColumnElement[bool], ...]:
    return (
        CreditEntry.subscription_id == subscription.id,
        CreditEntry.period_start == subscription.current_period_start,
    )


def balance_of(subscription: Subscription) -> CreditBalance:
    """The current period's balance (granting the period's credits first if not yet done)."""
    if not subscription.is_paused:
        _ensure_grant(subscription)
    totals: Counter[str] = Counter()
    rows = db.session.execute(
        select(CreditEntry.kind, func.sum(CreditEntry.quantity))
        .where(*_in_period(subscription))
        .group_by(CreditEntry.kind)
    )
    for kind, total in rows:
        totals[str(kind)] = int(total or 0)
    allowance = _allowance(subscription.id)
    rate = credit_rate()
    return CreditBalance(
        granted=totals["grant"],
        used=totals["use"],
        extra_used=totals["extra"],
        unit_amount_cents=rate.unit_amount_cents if rate else 0,
        cap_cents=allowance.cap_cents if allowance else 0,
        accepted_unit_cents=allowance.unit_amount_cents if allowance else 0,
        period_end=subscription.current_period_end,
        paused=subscription.is_paused,
    )


def credit_balance(user_id: int) -> CreditBalance | None:
    """The customer's balance, or None without a subscription that grants access."""
    subscription = live_subscription(user_id)
    if subscription is None or not subscription.grants_access:
        return None
    return balance_of(subscription)


def _allowance(subscription_id: int) -> OverageAllowance | None:
    return db.session.scalar(
        select(OverageAllowance).where(OverageAllowance.subscription_id == subscription_id)
    )


def spend_credit(user_id: int, action: str, study_id: int, series_uid: str) -> CreditEntry:
    """Spend one credit on ``action`` for a series: an included one, else an extra one within the
    customer's cap. Committed with its ledger row.

    :raises CreditsUnavailable: paused, or no subscription with access.
    :raises CreditsExhausted: nothing left and no room under the cap (the customer is told).
    """
    subscription = live_subscription(user_id)
    if subscription is None or not subscription.grants_access:
        raise CreditsUnavailable("Processing credits come with a subscription.")
    if subscription.is_paused:
        raise CreditsUnavailable("Your subscription is paused: credits are frozen until it resumes.")
    for _attempt in range(5):
        balance = balance_of(subscription)
        if balance.left > 0:
            entry = _entry(subscription, CreditKind.USE, balance.used + 1, 0, action, study_id, series_uid)
        elif balance.extra_left > 0:
            unit = balance.accepted_unit_cents
            entry = _entry(
                subscription, CreditKind.EXTRA, balance.extra_used + 1, unit, action, study_id, series_uid
            )
        else:
            notify_used_up(subscription, balance)
            db.session.commit()  # the notice (once per period) stands even though nothing is spent
            raise CreditsExhausted(exhausted_message(balance))
        try:
            with db.session.begin_nested():
                db.session.add(entry)
        except IntegrityError:
            db.session.rollback()  # someone spent the same credit first: read the balance again
            continue
        if entry.kind == CreditKind.USE and balance.left == 1:
            notify_used_up(subscription, balance)
        db.session.commit()
        return entry
    raise CreditsExhausted("Too many requests spent credits at once. Please try again.")


def _entry(
    subscription: Subscription, kind: CreditKind, seq: int, unit: int, action: str, study_id: int, series: str
) -> CreditEntry:
    return CreditEntry(
        user_id=subscription.user_id,
        subscription_id=subscription.id,
        period_start=subscription.current_period_start,
        kind=kind,
        seq=seq,
        quantity=1,
        unit_amount_cents=unit,
        action=action,
        study_id=study_id,
        series_uid=series,
        created_at=clock.now(),
    )


def exhausted_message(balance: CreditBalance) -> str:
    """What the customer reads when a credit cannot be spent."""
    if balance.cap_cents > 0:
        return (
            f"You have used your processing credits and the extra credits your monthly cap of "
            f"{format_money(balance.cap_cents, 'USD')} allows. Raise the cap or wait for your credits "
            f"to renew on {balance.period_end:%-d %B %Y}."
        )
    return (
        f"You have used all your processing credits for this period. Extra credits cost "
        f"{balance.unit_price} each: allow them up to a monthly cap on your studies page, or wait for "
        f"your credits to renew on {balance.period_end:%-d %B %Y}."
    )


def has_spent(study_id: int, series_uid: str, action: str) -> bool:
    """Whether a credit was ever spent on ``action`` for this series (a built 3D view stays built)."""
    return bool(
        db.session.scalar(
            select(
                exists().where(
                    CreditEntry.study_id == study_id,
                    CreditEntry.series_uid == series_uid,
                    CreditEntry.action == action,
                    CreditEntry.kind.in_((CreditKind.USE, CreditKind.EXTRA)),
                )
            )
        )
    )


def notify_used_up(subscription: Subscription, balance: CreditBalance) -> None:
    """Email the customer once per period that their credits are used up, with the price of an
    extra credit (queued in the caller's transaction)."""
    allowance = _allowance(subscription.id) or OverageAllowance(subscription_id=subscription.id)
    if allowance.notified_period_start == subscription.current_period_start:
        return
    allowance.notified_period_start = subscription.current_period_start
    db.session.add(allowance)
    queue_email(
        subscription.user.email,
        "You have used your processing credits",
        "studies_credits_used_up",
        user_id=subscription.user_id,
        balance=balance,
        studies_url=absolute_url("/studies/credits"),
    )


class AllowanceRefused(StudiesError):
    """The cap given is not a whole number of cents at least one credit's price. Nothing changed."""


def set_overage_cap(user_id: int, cap_cents: int) -> OverageAllowance:
    """Allow extra credits at the catalog's current price up to ``cap_cents`` a period (0: stop
    allowing them). Recorded with the price accepted, and in the audit log.

    :raises AllowanceRefused: a cap below one credit's price (and not 0), or no price on sale.
    :raises CreditsUnavailable: no subscription with access.
    """
    subscription = live_subscription(user_id)
    if subscription is None or not subscription.grants_access:
        raise CreditsUnavailable("Processing credits come with a subscription.")
    rate = credit_rate()
    if rate is None:
        raise AllowanceRefused("Extra credits are not on sale.")
    if cap_cents != 0 and not rate.unit_amount_cents <= cap_cents <= 1_000_000:
        raise AllowanceRefused(
            f"The cap must be at least {format_money(rate.unit_amount_cents, 'USD')} (one credit) "
            f"and at most {format_money(1_000_000, 'USD')}."
        )
    allowance = _allowance(subscription.id) or OverageAllowance(subscription_id=subscription.id)
    allowance.cap_cents = cap_cents
    allowance.unit_amount_cents = rate.unit_amount_cents if cap_cents else 0
    allowance.accepted_at = clock.now() if cap_cents else None
    db.session.add(allowance)
    audit.record(
        "credits.overage_cap_set",
        user_id,
        subscription,
        cap_cents=cap_cents,
        unit_cents=rate.unit_amount_cents,
    )
    db.session.commit()
    return allowance


def overage_lines(subscription: Subscription, start: datetime, end: datetime) -> list[LineSpec]:
    """The renewal invoice's overage lines for the period ``start``..``end``: one per unit price,
    quantity x price (deterministic: the same ledger gives the same lines)."""
    rows = db.session.execute(
        select(CreditEntry.unit_amount_cents, func.sum(CreditEntry.quantity))
        .where(
            CreditEntry.subscription_id == subscription.id,
            CreditEntry.period_start == start,
            CreditEntry.kind == CreditKind.EXTRA,
        )
        .group_by(CreditEntry.unit_amount_cents)
        .order_by(CreditEntry.unit_amount_cents)
    )
    lines = []
    for unit, quantity in rows:
        count = int(quantity)
        lines.append(
            LineSpec(
                kind=LineKind.OVERAGE,
                description=f"Extra processing credits: {count} x {format_money(unit, 'USD')}",
                amount_cents=count * unit,
                quantity=count,
                period_start=start,
                period_end=end,
            )
        )
    return lines


@dataclass(frozen=True)
class CreditOffer:
    """What the viewer shows about credits on one series of a customer's stored study."""

    balance: CreditBalance | None
    built_3d: bool

    @property
    def can_build(self) -> bool:
        return self.balance is not None and self.balance.can_spend


def offer_for(user_id: int, study_id: int, series_uid: str) -> CreditOffer:
    """The 3D view's state on this series and the customer's balance (shown before spending)."""
    return CreditOffer(credit_balance(user_id), has_spent(study_id, series_uid, BUILD_3D))


def ledger_of(user_id: int, limit: int = 50) -> list[CreditEntry]:
    """The customer's newest ledger lines (grants and uses), newest first."""
    query = (
        select(CreditEntry)
        .where(CreditEntry.user_id == user_id)
        .order_by(CreditEntry.created_at.desc(), CreditEntry.id.desc())
        .limit(limit)
    )
    return list(db.session.scalars(query))
