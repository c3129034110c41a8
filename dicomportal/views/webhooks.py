"""Stripe webhooks: verified, stored once, dispatched (docs/architecture.md#7-webhooks)."""

from __future__ import annotations

from flask import Blueprint, abort, current_app, request

from dicomportal.billing import webhooks
from dicomportal.extensions import csrf

bp = Blueprint("webhooks", __name__, url_prefix="/webhooks")


def body_of_at_most(limit: int) -> bytes:
    """The request body, or 413 once it proves longer than ``limit`` bytes.

    A declared Content-Length over the limit is refused before anything is read. A chunked body
    (which servers such as gunicorn pass on unlimited, as ``wsgi.input_terminated``) is read only
    up to ``limit + 1`` bytes, so memory stays flat whatever is sent.
    """
    request.max_content_length = limit
    chunks, size = [], 0
    while size <= limit:
        chunk = request.stream.read(min(64 * 1024, limit + 1 - size))
        if not chunk:
            break
        chunks.append(chunk)
        size += len(chunk)
    if size > limit:
        abort(413)
    return b"".join(chunks)


@bp.post("/stripe")
@csrf.exempt
def stripe_event() -> tuple[str, int]:
    """Receive one event: 413 if too big (before reading it), 400 if unsigned, forged or not an
    event, 500 if a handler failed (Stripe retries), else 200, for every event type."""
    payload = body_of_at_most(current_app.config["WEBHOOK_MAX_CONTENT_LENGTH"])
    secret = current_app.config["STRIPE_WEBHOOK_SECRET"]
    try:
        event = webhooks.verified_event(payload, request.headers.get("Stripe-Signature"), secret)
    except webhooks.RejectedEvent as exc:
        return str(exc), 400
    try:
        webhooks.receive(payload, event)
    except Exception:
        return "error", 500  # logged with the event id by the service
    return "ok", 200
