"""One renewal pass over 200 due subscriptions, every request judged by the strict Stripe: all
paid, nothing refused, and every charge the worker confirmed said ``off_session=true`` with a key
of this installation (docs/payments.md)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask
from sqlalchemy import func, select

from dicomportal import jobs
from dicomportal.billing.installation import installation_key
from dicomportal.extensions import db
from dicomportal.models import BillingReason, Invoice, InvoiceStatus, Subscription, User
from tests.helpers.strict_stripe import StrictView

START = datetime(2026, 6, 1, 12, 0, tzinfo=UTC)
CUSTOMERS = 200


def test_a_pass_over_200_due_renewals_pays_all_with_no_request_refused(
    app: Flask,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    strict_stripe: StrictView,
) -> None:
    with time_machine.travel(START, tick=False):
        for _ in range(CUSTOMERS):
            subscribe(make_customer())
    strict_stripe.clear()

    with time_machine.travel(START + timedelta(days=30, hours=1), tick=False):
        counts = jobs.run_once()

    assert counts["renew_due_subscriptions"]["charged"] == CUSTOMERS, counts
    renewals = select(func.count(Invoice.id)).where(
        Invoice.billing_reason == BillingReason.SUBSCRIPTION_CYCLE, Invoice.status == InvoiceStatus.PAID
    )
    assert db.session.scalar(renewals) == CUSTOMERS
    assert strict_stripe.refused == []
    confirms = [r for r in strict_stripe.requests if r.path.endswith("/confirm")]
    creates = [r for r in strict_stripe.requests if (r.method, r.path) == ("POST", "/v1/payment_intents")]
    assert len(confirms) == len(creates) == CUSTOMERS
    assert all(r.params.get("off_session") in (True, "true") for r in confirms)
    assert all(
        r.params.get("automatic_payment_methods", {}).get("allow_redirects") == "never" for r in creates
    )
    key = installation_key()
    assert all((r.idempotency_key or "").startswith(f"{key}:payment-") for r in creates)
