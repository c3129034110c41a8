"""Stripe webhooks: verified, stored once, dispatched (ARCHITECTURE.md section 7)."""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, request

from dicomportal.billing import gateway, webhooks
from dicomportal.extensions import csrf

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")
log = logging.getLogger(__name__)


@bp.post("/stripe")
@csrf.exempt
def stripe_event() -> tuple[str, int]:
    """Receive one event from Stripe: 400 if unsigned or forged, 500 (Stripe retries) if a handler fails."""
    try:
        event = gateway.verify_event(
            request.get_data(),
            request.headers.get("Stripe-Signature"),
            current_app.config["STRIPE_WEBHOOK_SECRET"],
        )
    except ValueError:
        return "invalid signature", 400
    try:
        webhooks.receive(event)
    except Exception:
        log.exception("webhook %s failed", event.get("id"))
        return "error", 500
    return "ok", 200
