"""What a customer may do right now, answered from their subscription's state. Views ask this."""

from __future__ import annotations

from dataclasses import dataclass, field

from sqlalchemy import select

from dicomportal.billing.subscriptions import live_subscription
from dicomportal.extensions import db
from dicomportal.models import Plan, Subscription, SubscriptionStatus

GB = 1024**3


@dataclass(frozen=True)
class Entitlements:
    plan_code: str | None
    status: SubscriptionStatus | None
    can_view: bool  # open studies in the cloud viewer
    can_upload: bool  # add studies to cloud storage
    storage_quota_bytes: int
    monthly_credits: int
    tools: frozenset[str] = field(default_factory=frozenset)  # viewer tools (studies/tools.py codes)
    plan_name: str | None = None


NONE = Entitlements(None, None, False, False, 0, 0)


def entitlements_for(user_id: int) -> Entitlements:
    """Active: everything. Past due: view and upload while dunning runs. Paused: view only (with
    the plan's viewer tools). Incomplete (first payment not made) and ended: nothing."""
    return entitlements_of(live_subscription(user_id))


def entitlements_of(subscription: Subscription | None) -> Entitlements:
    """The same answer for a subscription already at hand (None: the customer has no live one)."""
    if subscription is None or not subscription.grants_access:
        return NONE
    plan = subscription.price.plan
    return Entitlements(
        plan_code=plan.code,
        status=subscription.status,
        can_view=True,
        can_upload=not subscription.is_paused,
        storage_quota_bytes=plan.storage_gb * GB,
        monthly_credits=plan.monthly_credits,
        tools=frozenset(plan.tools),
        plan_name=plan.name,
    )


def plans_by_tool() -> dict[str, str]:
    """For each viewer tool, the name of the cheapest plan on sale that includes it (the label a
    tool carries where the customer's plan lacks it, and on the public demo)."""
    cheapest: dict[str, str] = {}
    for plan in db.session.scalars(select(Plan).where(Plan.active.is_(True)).order_by(Plan.rank.desc())):
        cheapest.update({tool: plan.name for tool in plan.tools})
    return cheapest
