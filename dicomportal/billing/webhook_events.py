"""The Stripe events the webhook endpoint must be subscribed to: the one list that the handlers
table (``webhooks.HANDLERS``), README's setup step and ``dicomportal check`` are held to.

Which and why:
- ``payment_intent.*``: an outcome the page never saw (a closed tab, 3-D Secure finished later);
  ``processing`` is re-read and changes nothing until the intent settles.
- ``charge.refunded`` and ``refund.*``: refunds made or failing outside a request (a refund Stripe
  later fails, one made in the Dashboard).
- ``charge.dispute.*``: a chargeback opened, its funds withdrawn or reinstated, its outcome.
- ``radar.early_fraud_warning.*``: a card network's fraud report, to refund before a dispute.
- ``payment_method.*``: a saved card removed, changed or updated by the card network (new expiry).
- ``customer.deleted``: a customer deleted at Stripe, whose cards can no longer be charged.
Not ``setup_intent.*``: a card is saved by the server's own confirm call after the browser's
``confirmCardSetup``; one whose confirm never came is not attached and never charged.
"""

from __future__ import annotations

REQUIRED_EVENTS: tuple[str, ...] = (
    "payment_intent.succeeded",
    "payment_intent.payment_failed",
    "payment_intent.requires_action",
    "payment_intent.canceled",
    "payment_intent.processing",
    "charge.refunded",
    "refund.created",
    "refund.updated",
    "refund.failed",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "radar.early_fraud_warning.created",
    "radar.early_fraud_warning.updated",
    "payment_method.detached",
    "payment_method.updated",
    "payment_method.automatically_updated",
    "customer.deleted",
)

ENDPOINT_PATH = "/webhooks/stripe"


def missing_events(enabled_events: set[str]) -> list[str]:
    """The required events an endpoint subscribed to ``enabled_events`` would not receive, in
    :data:`REQUIRED_EVENTS` order (``"*"``: every event, so none)."""
    if "*" in enabled_events:
        return []
    return [event for event in REQUIRED_EVENTS if event not in enabled_events]
