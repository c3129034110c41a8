"""Signed Stripe events for the webhook endpoint, built from Stripe's own example objects
(``tests/fixtures/stripe_fixtures3.json``, today's API shape) with the ids of the test's objects."""

from __future__ import annotations

import copy
import hashlib
import hmac
import json
import time
import urllib.parse
import urllib.request
from functools import cache
from pathlib import Path
from typing import Any

from flask import Flask
from flask.testing import FlaskClient

from tests.helpers.environment import WEBHOOK_SECRET

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe_fixtures3.json"


@cache
def _resources() -> dict[str, Any]:
    resources: dict[str, Any] = json.loads(FIXTURES.read_text())["resources"]
    return resources


def stripe_object(kind: str, **fields: Any) -> dict[str, Any]:
    """Stripe's example ``kind`` object (``refund``, ``charge``, ``payment_method``) with ``fields``."""
    return {**copy.deepcopy(_resources()[kind]), **fields}


def signed_event(event_type: str, obj: dict[str, Any], event_id: str) -> tuple[bytes, dict[str, str]]:
    """An event body as Stripe sends it today and its ``Stripe-Signature`` header."""
    body = {
        "id": event_id,
        "object": "event",
        "api_version": "2026-10-28",
        "created": int(time.time()),
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
        "data": {"object": obj},
    }
    payload = json.dumps(body).encode()
    timestamp = int(time.time())
    digest = hmac.new(WEBHOOK_SECRET.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()
    return payload, {"Stripe-Signature": f"t={timestamp},v1={digest}", "Content-Type": "application/json"}


def post_event(client: FlaskClient, event_type: str, obj: dict[str, Any], event_id: str) -> int:
    """Deliver one signed event to the endpoint; its HTTP status."""
    payload, headers = signed_event(event_type, obj, event_id)
    return client.post("/webhooks/stripe", data=payload, headers=headers).status_code


def localstripe_config(app: Flask, path: str, **form: Any) -> dict[str, Any]:
    """POST to a test-only route our launcher adds to localstripe (``devtools/localstripe_*.py``)."""
    data = urllib.parse.urlencode(form).encode()
    url = f"{app.config['STRIPE_API_BASE']}/_config/{path}"
    with urllib.request.urlopen(urllib.request.Request(url, data=data, method="POST"), timeout=10) as r:
        answer: dict[str, Any] = json.loads(r.read())
    return answer
