"""Idempotency-Keys (docs/payments.md): namespaced per installation, stable across retries of one
operation. The strict Stripe in front of localstripe keeps keys like one Stripe account does and
answers a repeated key with its first answer, so these tests see what real Stripe would do."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from dicomportal import create_app
from dicomportal.billing import cards, gateway, subscriptions  # noqa: F401
from dicomportal.billing.catalog import seed_catalog
from dicomportal.billing.errors import GatewayUnavailable
from dicomportal.billing.installation import installation_key
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.models import InvoiceStatus, Subscription, User
from tests.helpers.strict_stripe import StrictView
from tests.helpers.stripe import intents_of, stripe_client


@pytest.fixture
def second_installation(app_config: dict[str, Any], tmp_path: Path) -> Iterator[Flask]:
    """Another portal with a database of its own (fresh: ids from 1 again) and the same Stripe."""
    from flask_migrate import upgrade

    instance = tmp_path / "other-instance"
    instance.mkdir()
    (instance / "secret_key").write_text("another-installation")
    config = {**app_config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{instance / 'other.db'}"}
    other = create_app(config, instance_path=str(instance))
    with other.app_context():
        upgrade()
        seed_catalog()
        yield other
        db.session.remove()
        db.engine.dispose()


def test_two_installations_on_one_stripe_account_never_share_a_key(
    app: Flask,
    second_installation: Flask,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    strict_stripe: StrictView,
) -> None:
    """Both databases number their first payment 1; with keys like ``payment-1`` the second
    installation's charge would be answered with the first one's PaymentIntent (Stripe replays a
    key for 24 hours), and its customer never charged."""
    with app.app_context():
        first_user = make_customer(email="first@example.com")
        subscribe(first_user, "professional")
        first_key = installation_key()
        first_customer = first_user.stripe_customer_id
    with second_installation.app_context():
        second_user = make_customer(email="second@example.com")
        second_invoice_status = subscribe(second_user, "md").status
        second_key = installation_key()
        (second_invoice,) = invoices_for(second_user.id)
        assert second_invoice.id == 1 and second_invoice.status == InvoiceStatus.PAID
        second_customer = second_user.stripe_customer_id

    assert first_key != second_key and second_invoice_status.value == "active"
    assert first_customer != second_customer
    assert not strict_stripe.refused and not [r for r in strict_stripe.requests if r.replayed]
    keys = [r.idempotency_key for r in strict_stripe.requests if r.method == "POST" and r.idempotency_key]
    assert len(keys) == len(set(keys))  # every created object had a key of its own
    with app.app_context():
        (first,) = intents_of(app, first_user)
        (second,) = intents_of(app, second_user)
    assert (first.amount, first.status) == (2900, "succeeded")
    assert (second.amount, second.status) == (7900, "succeeded")


def test_a_lost_answer_to_creating_the_customer_never_makes_a_second_one(
    app: Flask,
    make_customer: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
    strict_stripe: StrictView,
) -> None:
    user = make_customer(email=f"lost-answer-{uuid.uuid4().hex[:8]}@example.com")  # one of a kind at Stripe
    real_create = gateway.create_customer

    def created_then_answer_lost(*args: Any, **kwargs: Any) -> str:
        real_create(*args, **kwargs)  # Stripe made it; the answer never reached us
        raise GatewayUnavailable("timed out")

    monkeypatch.setattr(gateway, "create_customer", created_then_answer_lost)
    with pytest.raises(GatewayUnavailable):
        cards.ensure_customer(user)
    assert user.stripe_customer_id is None
    monkeypatch.setattr(gateway, "create_customer", real_create)

    customer_id = cards.ensure_customer(user)  # the retry: the same operation, the same key

    creates = [r for r in strict_stripe.requests if (r.method, r.path) == ("POST", "/v1/customers")]
    assert len(creates) == 2 and creates[0].idempotency_key == creates[1].idempotency_key
    assert creates[1].replayed  # Stripe answered the retry with the Customer it made first
    ours = [
        c
        for c in stripe_client(app).v1.customers.list(params={"limit": 100}).auto_paging_iter()
        if (c.to_dict().get("metadata") or {}).get("user_id") == str(user.id) and c.email == user.email
    ]
    assert [c.id for c in ours] == [customer_id]
