"""The strict Stripe in front of localstripe refuses what real Stripe refuses, as Stripe words it,
and lets the lawful request of the same kind through (tests/helpers/strict_stripe.py).

Each refusal test uses the real SDK against the proxy, then checks at localstripe itself that
nothing was made. Stock localstripe refuses some lawful parameters (``off_session`` or
``return_url`` on confirm, ``allowed_payment_method_types``) with its own 400/500: the "passes"
tests only assert that the PROXY let the request through.
"""

from __future__ import annotations

import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import stripe
from flask import Flask

from tests.helpers.strict_stripe import (
    RETURN_URL_MESSAGE,
    StrictStripe,
    StrictView,
    allows_redirects,
    decode_form,
    needs_return_url,
)
from tests.helpers.stripe import GOOD_CARD

CARD = {"number": GOOD_CARD, "exp_month": 12, "exp_year": 2035, "cvc": "123"}


def sdk(base: str) -> stripe.StripeClient:
    return stripe.StripeClient("sk_test_strict", base_addresses={"api": base}, max_network_retries=0)


@pytest.fixture
def api(strict_stripe: StrictView) -> stripe.StripeClient:
    """The SDK as the app uses it, through the strict proxy."""
    return sdk(strict_stripe.api_base)


@pytest.fixture
def upstream(strict_stripe: StrictView) -> stripe.StripeClient:
    """localstripe itself, to see what was (not) made."""
    return sdk(strict_stripe.upstream)


def key(what: str) -> str:
    """An idempotency key of ours, unique in this session (keys are kept per proxy)."""
    return f"{what}-{uuid.uuid4().hex}"


@pytest.fixture
def card_customer(upstream: stripe.StripeClient) -> tuple[str, str]:
    """A customer with a saved card, made at localstripe directly: (customer id, payment method id)."""
    customer = upstream.v1.customers.create(params={"email": "strict@example.com"})
    card = upstream.v1.payment_methods.create(params={"type": "card", "card": CARD})  # type: ignore[typeddict-item]
    upstream.v1.payment_methods.attach(card.id, params={"customer": customer.id})
    return customer.id, card.id


def intents_marked(upstream: stripe.StripeClient, probe: str) -> list[Any]:
    pages = upstream.v1.payment_intents.list(params={"limit": 100}).auto_paging_iter()
    return [i for i in pages if (i.to_dict().get("metadata") or {}).get("probe") == probe]


def customers_with(upstream: stripe.StripeClient, email: str) -> list[Any]:
    return [
        c for c in upstream.v1.customers.list(params={"limit": 100}).auto_paging_iter() if c.email == email
    ]


def not_refused_by_proxy(strict_stripe: StrictView, call: Callable[[], Any]) -> None:
    """Run ``call``; whatever localstripe answers, the proxy must have let it through."""
    try:
        call()
    except stripe.InvalidRequestError as exc:
        assert "strict_stripe" not in str(exc)
    except stripe.APIError:
        pass  # stock localstripe's 500 on a parameter it does not know
    assert strict_stripe.refused == []
    assert strict_stripe.requests, "the request never reached the proxy"


# --- rule: return_url on confirm (API 2023-08-16) -------------------------------------------------


def intent_params(customer: tuple[str, str], probe: str, **more: Any) -> dict[str, Any]:
    return {
        "amount": 1234,
        "currency": "eur",
        "customer": customer[0],
        "payment_method": customer[1],
        "metadata": {"probe": probe},
        **more,
    }


def test_confirm_without_return_url_or_off_session_is_refused_and_charges_nothing(
    api: stripe.StripeClient,
    upstream: stripe.StripeClient,
    strict_stripe: StrictView,
    card_customer: tuple[str, str],
) -> None:
    strict_stripe.expect_refusals("return_url")
    params = intent_params(card_customer, "confirm-refused", confirm=False)
    intent = api.v1.payment_intents.create(params=params, options={"idempotency_key": key("payment")})  # type: ignore[arg-type]

    with pytest.raises(stripe.InvalidRequestError) as refused:
        api.v1.payment_intents.confirm(intent.id)

    assert refused.value.http_status == 400
    assert refused.value.user_message == RETURN_URL_MESSAGE
    assert upstream.v1.payment_intents.retrieve(intent.id).status == "requires_confirmation"
    assert [s.rule for s in strict_stripe.refused] == ["return_url"]


def test_create_with_confirm_but_without_return_url_is_refused_and_makes_no_intent(
    api: stripe.StripeClient,
    upstream: stripe.StripeClient,
    strict_stripe: StrictView,
    card_customer: tuple[str, str],
) -> None:
    strict_stripe.expect_refusals("return_url")
    probe = uuid.uuid4().hex
    with pytest.raises(stripe.InvalidRequestError, match="A `return_url` must be specified"):
        api.v1.payment_intents.create(
            params=intent_params(card_customer, probe, confirm=True),  # type: ignore[arg-type]
            options={"idempotency_key": key("payment")},
        )
    assert intents_marked(upstream, probe) == []


def test_an_off_session_charge_needs_no_return_url(
    api: stripe.StripeClient, strict_stripe: StrictView, card_customer: tuple[str, str]
) -> None:
    params = intent_params(card_customer, "off-session", confirm=True, off_session=True)
    intent = api.v1.payment_intents.create(params=params, options={"idempotency_key": key("payment")})  # type: ignore[arg-type]

    assert intent.status == "succeeded"
    assert strict_stripe.refused == []
    assert strict_stripe.requests[-1].params["off_session"] == "true"


def test_confirming_with_off_session_or_a_return_url_passes_the_proxy(
    api: stripe.StripeClient, strict_stripe: StrictView, card_customer: tuple[str, str]
) -> None:
    for lawful in ({"off_session": True}, {"return_url": "https://portal.example/billing"}):
        params = intent_params(card_customer, "confirm-lawful", confirm=False)
        intent = api.v1.payment_intents.create(params=params, options={"idempotency_key": key("payment")})  # type: ignore[arg-type]
        not_refused_by_proxy(strict_stripe, lambda: api.v1.payment_intents.confirm(intent.id, params=lawful))  # type: ignore[arg-type]  # noqa: B023
        assert strict_stripe.requests[-1].path == f"/v1/payment_intents/{intent.id}/confirm"


def test_an_intent_for_cards_only_or_without_redirects_may_be_confirmed_without_return_url(
    api: stripe.StripeClient, strict_stripe: StrictView, card_customer: tuple[str, str]
) -> None:
    assert needs_return_url(allows_redirects({"amount": "1", "currency": "eur"}), {})
    assert not needs_return_url(allows_redirects({"allowed_payment_method_types": ["card"]}), {})
    assert needs_return_url(allows_redirects({"allowed_payment_method_types": ["card", "ideal"]}), {})
    never = {"automatic_payment_methods": {"enabled": "true", "allow_redirects": "never"}}
    assert not needs_return_url(allows_redirects(never), {})
    # and the create itself is lawful on the pinned API (localstripe may not know the parameter)
    params = intent_params(card_customer, "cards-only", confirm=False, allowed_payment_method_types=["card"])
    not_refused_by_proxy(
        strict_stripe,
        lambda: api.v1.payment_intents.create(params=params, options={"idempotency_key": key("payment")}),  # type: ignore[arg-type]
    )


def test_payment_method_types_is_refused_as_on_api_2026_09_30_and_later(
    api: stripe.StripeClient,
    upstream: stripe.StripeClient,
    strict_stripe: StrictView,
    card_customer: tuple[str, str],
) -> None:
    strict_stripe.expect_refusals("parameters")
    probe = uuid.uuid4().hex
    with pytest.raises(stripe.InvalidRequestError) as refused:
        api.v1.payment_intents.create(
            params=intent_params(card_customer, probe, payment_method_types=["card"]),  # type: ignore[arg-type]
            options={"idempotency_key": key("payment")},
        )
    assert refused.value.code == "payment_method_types_no_longer_supported"
    assert intents_marked(upstream, probe) == []


# --- rule: an Idempotency-Key of ours on every create, and Stripe's replay ----------------------------


def test_a_create_without_a_key_of_ours_is_refused_and_makes_no_customer(
    api: stripe.StripeClient, upstream: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    strict_stripe.expect_refusals("idempotency_key")
    email = f"{uuid.uuid4().hex}@example.com"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        api.v1.customers.create(params={"email": email})  # the SDK adds a random key of its own
    assert refused.value.http_status == 400
    assert "Idempotency-Key" in str(refused.value.user_message)

    bare = urllib.request.Request(
        f"{strict_stripe.api_base}/v1/customers",
        data=f"email={email}".encode(),
        headers={
            "Authorization": "Bearer sk_test_strict",
            "Content-Type": "application/x-www-form-urlencoded",
        },
    )
    with pytest.raises(urllib.error.HTTPError) as no_header:
        urllib.request.urlopen(bare, timeout=10)
    assert no_header.value.code == 400
    assert json.loads(no_header.value.read())["error"]["code"] == "strict_stripe_idempotency_key_missing"
    assert customers_with(upstream, email) == []


def test_a_create_with_our_key_passes(api: stripe.StripeClient, strict_stripe: StrictView) -> None:
    customer = api.v1.customers.create(
        params={"email": "ours@example.com"}, options={"idempotency_key": key("user")}
    )
    assert customer.email == "ours@example.com"
    assert strict_stripe.refused == []


def test_the_same_key_and_params_again_give_the_first_object_back(
    api: stripe.StripeClient, upstream: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    email, same = f"{uuid.uuid4().hex}@example.com", key("user")
    first = api.v1.customers.create(params={"email": email}, options={"idempotency_key": same})
    again = api.v1.customers.create(params={"email": email}, options={"idempotency_key": same})

    assert again.id == first.id
    assert [c.id for c in customers_with(upstream, email)] == [first.id]
    assert [s.replayed for s in strict_stripe.requests] == [False, True]


def test_the_same_key_with_other_params_is_refused_as_stripe_does(
    api: stripe.StripeClient, upstream: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    strict_stripe.expect_refusals("idempotency")
    email, same = f"{uuid.uuid4().hex}@example.com", key("user")
    api.v1.customers.create(params={"email": email}, options={"idempotency_key": same})
    with pytest.raises(stripe.IdempotencyError) as refused:
        api.v1.customers.create(
            params={"email": "other@example.com", "name": "Other"}, options={"idempotency_key": same}
        )
    assert str(refused.value.user_message).startswith(
        "Keys for idempotent requests can only be used with the same parameters they were first used with"
    )
    assert len(customers_with(upstream, email)) == 1


def test_parallel_creates_each_get_their_own_object(
    api: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    emails = [f"parallel-{i}-{uuid.uuid4().hex}@example.com" for i in range(24)]

    def create(email: str) -> str:
        customer = api.v1.customers.create(params={"email": email}, options={"idempotency_key": key("user")})
        return str(customer.email)

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert sorted(pool.map(create, emails)) == sorted(emails)
    assert strict_stripe.refused == []


# --- rule: parameters as the pinned SDK's own request types define them -------------------------------


def test_an_unknown_parameter_is_refused_with_stripes_words(
    api: stripe.StripeClient, upstream: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    strict_stripe.expect_refusals("parameters")
    email = f"{uuid.uuid4().hex}@example.com"
    with pytest.raises(stripe.InvalidRequestError) as refused:
        api.v1.customers.create(
            params={"email": email, "vat_number": "DE123"},  # type: ignore[typeddict-unknown-key]
            options={"idempotency_key": key("user")},
        )
    assert refused.value.code == "parameter_unknown"
    assert refused.value.param == "vat_number"
    assert refused.value.user_message == "Received unknown parameter: vat_number"
    assert customers_with(upstream, email) == []


def test_an_unknown_name_inside_a_typed_object_is_refused_but_metadata_takes_any(
    api: stripe.StripeClient, strict_stripe: StrictView, card_customer: tuple[str, str]
) -> None:
    strict_stripe.expect_refusals("parameters")
    params = intent_params(
        card_customer, "nested", automatic_payment_methods={"enabled": True, "wallets": "off"}
    )
    with pytest.raises(stripe.InvalidRequestError) as refused:
        api.v1.payment_intents.create(params=params, options={"idempotency_key": key("payment")})  # type: ignore[arg-type]
    assert refused.value.param == "automatic_payment_methods[wallets]"

    strict_stripe.clear()
    api.v1.customers.create(
        params={"email": "m@example.com", "metadata": {"anything": "goes", "user_id": "7"}},
        options={"idempotency_key": key("user")},
    )
    assert strict_stripe.refused == []


def test_a_missing_required_parameter_is_refused_with_stripes_words(
    api: stripe.StripeClient, upstream: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    strict_stripe.expect_refusals("parameters")
    customer = upstream.v1.customers.create(params={"email": "tax@example.com"})
    with pytest.raises(stripe.InvalidRequestError) as refused:
        api.v1.customers.tax_ids.create(
            customer.id,
            params={"type": "eu_vat"},  # type: ignore[typeddict-item]
            options={"idempotency_key": key("tax-id")},
        )
    assert refused.value.code == "parameter_missing"
    assert refused.value.user_message == "Missing required param: value."
    assert list(upstream.v1.customers.tax_ids.list(customer.id).auto_paging_iter()) == []


def test_a_route_without_a_mapping_is_refused_with_how_to_add_it(
    api: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    strict_stripe.expect_refusals("unmapped")
    with pytest.raises(stripe.InvalidRequestError, match="add a Route for it to ROUTES"):
        api.v1.events.list()
    assert strict_stripe.refused[0].path == "/v1/events"


def test_query_strings_and_form_bodies_are_decoded_into_nested_params(
    api: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    assert decode_form("a[b]=c&a[d][0]=x&a[d][1]=y&e[]=1&e[]=2&f=") == {
        "a": {"b": "c", "d": ["x", "y"]},
        "e": ["1", "2"],
        "f": "",
    }
    api.v1.payment_intents.list(params={"limit": 3})
    assert strict_stripe.requests[-1].method == "GET"
    assert strict_stripe.requests[-1].params == {"limit": "3"}


# --- what passes untouched, and the fixture itself ----------------------------------------------------


def test_browser_traffic_and_localstripe_config_pass_through_unrecorded(strict_stripe: StrictView) -> None:
    with urllib.request.urlopen(f"{strict_stripe.api_base}/js.stripe.com/v3/", timeout=10) as proxied:
        script = proxied.read()
    with urllib.request.urlopen(f"{strict_stripe.upstream}/js.stripe.com/v3/", timeout=10) as direct:
        assert script == direct.read()

    def preflight(base: str) -> tuple[int, str | None]:
        request = urllib.request.Request(
            f"{base}/v1/setup_intents/seti_x/confirm",
            method="OPTIONS",
            headers={"Origin": "http://127.0.0.1:5000", "Access-Control-Request-Method": "POST"},
        )
        try:
            with urllib.request.urlopen(request, timeout=10) as answer:
                return answer.status, answer.headers.get("Access-Control-Allow-Origin")
        except urllib.error.HTTPError as answer:  # localstripe answers preflights 401, with CORS headers
            return answer.code, answer.headers.get("Access-Control-Allow-Origin")

    assert preflight(strict_stripe.api_base) == preflight(strict_stripe.upstream)
    assert preflight(strict_stripe.api_base)[1] == "http://127.0.0.1:5000"

    publishable = urllib.request.Request(
        f"{strict_stripe.api_base}/v1/tokens",  # as the fake Stripe.js's createToken posts it
        data=json.dumps({"key": "pk_test_x", "card": CARD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(publishable, timeout=10) as made:
        assert json.loads(made.read())["id"].startswith("tok_")
    assert strict_stripe.requests == []


def test_an_unannounced_refusal_is_reported_and_an_announced_one_is_not(
    api: stripe.StripeClient, strict_stripe: StrictView
) -> None:
    with pytest.raises(stripe.InvalidRequestError):
        api.v1.customers.create(params={"email": "x@example.com"})  # no key of ours
    assert [s.rule for s in strict_stripe.unexpected_refusals()] == ["idempotency_key"]
    strict_stripe.expect_refusals("parameters")
    assert [s.rule for s in strict_stripe.unexpected_refusals()] == ["idempotency_key"]
    strict_stripe.expect_refusals("idempotency_key")
    assert strict_stripe.unexpected_refusals() == []


def test_strict_stripe_0_relays_without_judging(strict_stripe: StrictView) -> None:
    with StrictStripe(strict_stripe.upstream, mode="off") as lax:
        customer = sdk(lax.api_base).v1.customers.create(params={"email": "lax@example.com"})
        assert customer.email == "lax@example.com"
        assert [(s.path, s.refused) for s in lax.log] == [("/v1/customers", False)]


def test_strict_stripe_report_relays_and_records_what_it_would_refuse(strict_stripe: StrictView) -> None:
    with StrictStripe(strict_stripe.upstream, mode="report") as reporting:
        customer = sdk(reporting.api_base).v1.customers.create(params={"email": "report@example.com"})
        assert customer.email == "report@example.com"
        assert [(s.rule, s.relayed, s.status) for s in reporting.log] == [("idempotency_key", True, 200)]


def test_the_app_talks_to_the_strict_stripe(app: Flask, strict_stripe: StrictView) -> None:
    assert app.config["STRIPE_API_BASE"] == strict_stripe.api_base
