"""localstripe, taught the refund and card events Stripe sends (demo and tests only).

localstripe's refunds always succeed and it never sends ``charge.refunded``, ``refund.*`` or
``payment_method.*`` events (docs/localstripe.md#what-it-does-not-do). This adds what the tests
of refunds made in the Stripe Dashboard and of cards changed at Stripe need, the way Stripe
behaves:

- creating a refund sends ``refund.created`` and ``charge.refunded`` (as Stripe does);
- ``POST /_config/refunds/{id}/fail`` (form ``failure_reason``, default ``expired_or_canceled_card``)
  makes a refund ``failed`` and sends ``refund.failed`` and ``refund.updated``; a failed refund no
  longer counts in its charge's ``amount_refunded``, as at Stripe;
- ``POST /_config/payment_methods/{id}`` (form ``exp_month``, ``exp_year``, ``last4``) changes a
  saved card as a bank's card updater would, and sends ``payment_method.automatically_updated``.

Detaching a card still sends no ``payment_method.detached`` (localstripe's routes hold its detach
function itself): tests post that event signed, as they post the others.
"""

from __future__ import annotations

from typing import Any

FAILURE_REASONS = frozenset(
    {
        "lost_or_stolen_card",
        "expired_or_canceled_card",
        "charge_for_pending_refund_disputed",
        "insufficient_funds",
        "declined",
        "merchant_request",
        "unknown",
    }
)


def install(resources: Any, app: Any) -> None:
    """Patch localstripe's ``resources`` and add the test-only routes to its aiohttp ``app``
    (before it starts serving)."""
    from aiohttp import web
    from localstripe.errors import UserError
    from localstripe.server import get_post_data
    from localstripe.webhooks import schedule_webhook

    Event, Refund, Charge, PaymentMethod = (
        resources.Event,
        resources.Refund,
        resources.Charge,
        resources.PaymentMethod,
    )

    created = Refund.__init__

    def refund_init(self: Any, *args: Any, **kwargs: Any) -> None:
        created(self, *args, **kwargs)
        schedule_webhook(Event("refund.created", self))
        schedule_webhook(Event("charge.refunded", Charge._api_retrieve(self.charge)))

    Refund.__init__ = refund_init
    Charge.amount_refunded = property(
        lambda charge: sum(r.amount for r in charge.refunds._list if r.status != "failed")
    )

    async def fail_refund(request: web.Request) -> web.Response:
        data = await get_post_data(request) or {}
        reason = str(data.get("failure_reason") or "expired_or_canceled_card")
        if reason not in FAILURE_REASONS:
            raise UserError(400, "Bad failure_reason")
        refund = Refund._api_retrieve(request.match_info["id"])
        refund.status, refund.failure_reason = "failed", reason
        schedule_webhook(Event("refund.failed", refund))
        schedule_webhook(Event("refund.updated", refund))
        return web.json_response(refund._export())

    async def update_card(request: web.Request) -> web.Response:
        data = await get_post_data(request) or {}
        pm = PaymentMethod._api_retrieve(request.match_info["id"])
        try:
            month = int(data.get("exp_month", pm.card["exp_month"]))
            year = int(data.get("exp_year", pm.card["exp_year"]))
            last4 = str(data.get("last4", pm.card["last4"]))
            assert 1 <= month <= 12 and 2000 <= year <= 2100 and len(last4) == 4 and last4.isdigit()
        except (AssertionError, ValueError) as exc:
            raise UserError(400, "Bad request") from exc
        pm.card = {**pm.card, "exp_month": month, "exp_year": year, "last4": last4}
        schedule_webhook(Event("payment_method.automatically_updated", pm))
        return web.json_response(pm._export())

    app.router.add_post("/_config/refunds/{id}/fail", fail_refund)
    app.router.add_post("/_config/payment_methods/{id}", update_card)
