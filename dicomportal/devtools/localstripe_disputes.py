"""Disputes and early fraud warnings for localstripe, which has neither (its answer is 404).

``install(resources, app)`` adds, in the shape of Stripe's own examples (fixtures3.json):

- ``GET /v1/disputes/{id}``, ``GET /v1/disputes``, ``POST /v1/disputes/{id}`` (evidence, metadata,
  submit) and ``POST /v1/disputes/{id}/close`` (accept the dispute: it is lost);
- ``GET /v1/radar/early_fraud_warnings/{id}`` and ``GET /v1/radar/early_fraud_warnings``;
- test-only routes that play the card networks' part: ``POST /_config/disputes`` (a dispute on an
  existing ``charge`` or ``payment_intent``, with a ``reason``, optionally an ``amount``, a
  ``status`` of ``needs_response`` or ``warning_needs_response`` (an inquiry) and an
  ``evidence_due_by``), ``POST /_config/disputes/{id}`` (its ``status`` becomes ``under_review``,
  ``won`` or ``lost``) and ``POST /_config/early_fraud_warnings`` (``charge`` or
  ``payment_intent``, ``fraud_type``).

Each change schedules the signed webhook events Stripe sends (``charge.dispute.created``,
``.funds_withdrawn``, ``.updated``, ``.closed``, ``.funds_reinstated``,
``radar.early_fraud_warning.created``/``.updated``) through localstripe's own ``schedule_webhook``.
It also makes refunds behave as Stripe's do around disputes: ``reason`` is accepted, a refund of a
charge under a formal dispute is refused with ``charge_disputed``, and a warning stops being
actionable once its charge is disputed or fully refunded.
"""

from __future__ import annotations

import time
from typing import Any

from localstripe import resources as _localstripe

# Stripe's dispute fee, as its balance transactions carry it (USD).
DISPUTE_FEE = 1500
REASONS = frozenset(
    {
        "bank_cannot_process", "check_returned", "credit_not_processed", "customer_initiated",
        "debit_not_authorized", "duplicate", "fraudulent", "general", "incorrect_account_details",
        "insufficient_funds", "noncompliant", "product_not_received", "product_unacceptable",
        "subscription_canceled", "unrecognized",
    }
)  # fmt: skip
FRAUD_TYPES = frozenset(
    {
        "card_never_received", "fraudulent_card_application", "made_with_counterfeit_card",
        "made_with_lost_card", "made_with_stolen_card", "misc", "unauthorized_use_of_card",
    }
)  # fmt: skip
REFUND_REASONS = frozenset({"duplicate", "fraudulent", "requested_by_customer"})
EVIDENCE_DAYS = 7 * 24 * 3600
# Statuses under which Stripe refuses a refund of the charge (a formal dispute, or lost).
NOT_REFUNDABLE = frozenset({"needs_response", "under_review", "lost"})
CLOSED = frozenset({"won", "lost", "warning_closed"})


def install(resources: Any, app: Any) -> None:
    """Add the dispute and early fraud warning resources and routes to localstripe's ``app``
    (before it starts serving), and make its refunds dispute-aware."""
    _guard_refunds(resources)
    _add_routes(resources, app, Dispute, EarlyFraudWarning)


def _charge_of(resources: Any, charge: Any, payment_intent: Any) -> Any:
    """The localstripe Charge named by ``charge`` or by ``payment_intent``'s latest charge."""
    UserError = resources.UserError
    if isinstance(charge, str) and charge:
        return resources.Charge._api_retrieve(charge)
    if isinstance(payment_intent, str) and payment_intent:
        intent = resources.PaymentIntent._api_retrieve(payment_intent)
        if intent.latest_charge is None:
            raise UserError(400, "This PaymentIntent has no charge to dispute.")
        return intent.latest_charge
    raise UserError(400, "Give a charge or a payment_intent.")


class Dispute(_localstripe.StripeObject):  # type: ignore[misc]
    """A dispute of a localstripe charge, exported like Stripe's (fixtures3.json)."""

    object = "dispute"
    _id_prefix = "dp_"

    def __init__(self, charge: Any, reason: str, status: str, amount: int | None = None) -> None:
        super().__init__()
        self.amount = charge.amount if amount is None else amount
        self.balance_transactions: list[dict[str, Any]] = []
        self.charge = charge.id
        self.currency = charge.currency
        self.evidence: dict[str, Any] = {
            "uncategorized_text": None,
            "product_description": None,
            "enhanced_evidence": {},
        }
        self.evidence_details = {
            "due_by": int(time.time()) + EVIDENCE_DAYS,
            "has_evidence": False,
            "past_due": False,
            "submission_count": 0,
            "enhanced_eligibility": {},
        }
        self.metadata: dict[str, str] = {}
        self.payment_intent = charge.payment_intent
        self.payment_method_details = {"card": {"brand": "visa", "network": "visa"}, "type": "card"}
        self.reason = reason
        self.status = status
        self.enhanced_eligibility_types: list[str] = []

    @property
    def is_charge_refundable(self) -> bool:
        return self.status not in NOT_REFUNDABLE

    def _move(self, amount: int, fee: int, description: str) -> None:
        self.balance_transactions.append(
            {
                "id": "txn_" + _localstripe.random_id(14),
                "object": "balance_transaction",
                "amount": amount,
                "currency": self.currency,
                "description": description,
                "fee": fee,
                "fee_details": [_fee(fee, self.currency)] if fee else [],
                "net": amount - fee,
                "reporting_category": "dispute" if amount < 0 else "dispute_reversal",
                "source": self.id,
                "status": "available",
                "type": "adjustment",
            }
        )


def _fee(amount: int, currency: str) -> dict[str, Any]:
    return {"amount": amount, "currency": currency, "description": "Dispute fee", "type": "stripe_fee"}


class EarlyFraudWarning(_localstripe.StripeObject):  # type: ignore[misc]
    """Radar's early fraud warning about a localstripe charge."""

    object = "radar.early_fraud_warning"
    _id_prefix = "issfr_"

    def __init__(self, charge: Any, fraud_type: str) -> None:
        super().__init__()
        self.charge = charge.id
        self.fraud_type = fraud_type
        self.payment_intent = charge.payment_intent

    @property
    def actionable(self) -> bool:
        """Stripe's rule: not disputed and not fully refunded."""
        charge = _localstripe.Charge._api_retrieve(self.charge)
        return not charge.refunded and _dispute_on(self.charge) is None


def _dispute_on(charge_id: str) -> Any:
    for key, value in list(_localstripe.store.items()):
        if key.startswith("dispute:") and value.charge == charge_id:
            return value
    return None


def _warnings_on(charge_id: str) -> list[Any]:
    return [
        value
        for key, value in list(_localstripe.store.items())
        if key.startswith("radar.early_fraud_warning:") and value.charge == charge_id
    ]


def _event(resources: Any, event_type: str, obj: Any) -> None:
    resources.schedule_webhook(resources.Event(event_type, obj))


def _guard_refunds(resources: Any) -> None:
    """Refunds as Stripe makes them around disputes (see the module docstring)."""
    refund_class = resources.Refund
    if getattr(refund_class, "_dispute_aware", False):
        return
    original = refund_class.__init__

    def init(
        self: Any, charge: Any = None, payment_intent: Any = None, reason: Any = None, **kwargs: Any
    ) -> None:
        if reason is not None and reason not in REFUND_REASONS:
            raise resources.UserError(400, "Invalid reason")
        try:
            target_id = _charge_of(resources, charge, payment_intent).id
        except (resources.UserError, AttributeError):
            target_id = None  # the refund itself is refused below, with localstripe's own error
        dispute = _dispute_on(target_id) if target_id else None
        if dispute is not None and not dispute.is_charge_refundable:
            message = f"Charge {target_id} has been charged back; cannot issue a refund."
            raise resources.UserError(400, message, {"code": "charge_disputed"})
        warnings = [w for w in _warnings_on(target_id) if w.actionable] if target_id else []
        original(self, charge=charge, payment_intent=payment_intent, **kwargs)
        self.reason = reason
        for warning in warnings:
            if not warning.actionable:
                _event(resources, "radar.early_fraud_warning.updated", warning)

    refund_class.__init__ = init
    refund_class._dispute_aware = True


async def _form(request: Any) -> dict[str, Any]:
    from localstripe.server import get_post_data

    return dict(await get_post_data(request) or {})


def _json(obj: Any) -> Any:
    from localstripe.server import json_response

    return json_response(obj._export())


def _add_routes(resources: Any, app: Any, dispute_class: Any, warning_class: Any) -> None:
    UserError = resources.UserError

    def find(cls: Any, object_id: str) -> Any:
        return cls._api_retrieve(object_id)

    async def create_dispute(request: Any) -> Any:
        data = await _form(request)
        reason = data.get("reason") or "general"
        status = data.get("status") or "needs_response"
        if reason not in REASONS or status not in ("needs_response", "warning_needs_response"):
            raise UserError(400, "Bad request: reason, or status needs_response|warning_needs_response")
        charge = _charge_of(resources, data.get("charge"), data.get("payment_intent"))
        if _dispute_on(charge.id) is not None:
            raise UserError(400, f"Charge {charge.id} is already disputed.")
        amount, due_by = data.get("amount"), data.get("evidence_due_by")
        dispute = dispute_class(charge, reason, status, int(amount) if amount else None)
        if due_by:
            dispute.evidence_details["due_by"] = int(due_by)
        _event(resources, "charge.dispute.created", dispute)
        if status == "needs_response":
            dispute._move(-dispute.amount, DISPUTE_FEE, f"Chargeback withdrawal for {charge.id}")
            _event(resources, "charge.dispute.funds_withdrawn", dispute)
        for warning in _warnings_on(charge.id):
            _event(resources, "radar.early_fraud_warning.updated", warning)
        return _json(dispute)

    async def settle_dispute(request: Any) -> Any:
        dispute = find(dispute_class, request.match_info["id"])
        status = (await _form(request)).get("status")
        if status not in ("under_review", "won", "lost") or dispute.status in CLOSED:
            raise UserError(400, "Bad request: status under_review|won|lost, of an open dispute")
        inquiry = dispute.status.startswith("warning_")
        if inquiry:
            status = {"under_review": "warning_under_review"}.get(status, "warning_closed")
        dispute.status = status
        if status == "won" and not inquiry:
            dispute._move(dispute.amount, -DISPUTE_FEE, f"Chargeback reversal for {dispute.charge}")
            _event(resources, "charge.dispute.funds_reinstated", dispute)
        _event(resources, "charge.dispute.closed" if status in CLOSED else "charge.dispute.updated", dispute)
        return _json(dispute)

    async def update_dispute(request: Any) -> Any:
        dispute = find(dispute_class, request.match_info["id"])
        data = await _form(request)
        unknown = set(data) - {"evidence", "metadata", "submit", "expand"}
        if unknown or dispute.status in CLOSED:
            raise UserError(400, "Bad request: " + (", ".join(sorted(unknown)) or "the dispute is closed"))
        evidence = data.get("evidence") or {}
        if not isinstance(evidence, dict):
            raise UserError(400, "Bad request: evidence")
        dispute.evidence.update(evidence)
        dispute.metadata.update(data.get("metadata") or {})
        if str(data.get("submit", "true")).lower() != "false":
            dispute.evidence_details["submission_count"] += 1
            dispute.evidence_details["has_evidence"] = True
            dispute.status = {"needs_response": "under_review"}.get(dispute.status, dispute.status)
            if dispute.status == "warning_needs_response":
                dispute.status = "warning_under_review"
        _event(resources, "charge.dispute.updated", dispute)
        return _json(dispute)

    async def close_dispute(request: Any) -> Any:
        dispute = find(dispute_class, request.match_info["id"])
        if dispute.status in CLOSED:
            raise UserError(400, "Bad request: the dispute is closed")
        dispute.status = "warning_closed" if dispute.status.startswith("warning_") else "lost"
        _event(resources, "charge.dispute.closed", dispute)
        return _json(dispute)

    async def create_warning(request: Any) -> Any:
        data = await _form(request)
        fraud_type = data.get("fraud_type") or "misc"
        if fraud_type not in FRAUD_TYPES:
            raise UserError(400, "Bad request: fraud_type")
        charge = _charge_of(resources, data.get("charge"), data.get("payment_intent"))
        warning = warning_class(charge, fraud_type)
        _event(resources, "radar.early_fraud_warning.created", warning)
        return _json(warning)

    def retrieve(cls: Any) -> Any:
        async def handler(request: Any) -> Any:
            return _json(find(cls, request.match_info["id"]))

        return handler

    def list_all(cls: Any, url: str) -> Any:
        async def handler(request: Any) -> Any:
            from localstripe.server import unflatten_data

            query = dict(unflatten_data(request.query) or {})
            charge, intent = query.pop("charge", None), query.pop("payment_intent", None)
            query.pop("expand", None)
            found = cls._api_list_all(url, **query)
            found._list = [
                o for o in found._list if charge in (None, o.charge) and intent in (None, o.payment_intent)
            ]
            return _json(found)

        return handler

    router = app.router
    router.add_post("/_config/disputes", create_dispute)
    router.add_post("/_config/disputes/{id}", settle_dispute)
    router.add_post("/_config/early_fraud_warnings", create_warning)
    router.add_get("/v1/disputes", list_all(dispute_class, "/v1/disputes"))
    router.add_get("/v1/disputes/{id}", retrieve(dispute_class))
    router.add_post("/v1/disputes/{id}", update_dispute)
    router.add_post("/v1/disputes/{id}/close", close_dispute)
    warnings_url = "/v1/radar/early_fraud_warnings"
    router.add_get(warnings_url, list_all(warning_class, warnings_url))
    router.add_get("/v1/radar/early_fraud_warnings/{id}", retrieve(warning_class))
