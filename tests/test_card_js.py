"""static/js/card.js's wallet button, run in node against a stubbed Stripe.js (no browser here can
show it: localstripe's Stripe.js has no paymentRequest). The button appears only where Stripe.js
has ``paymentRequest`` and ``canMakePayment()`` finds a wallet; the wallet's PaymentMethod confirms
the card form's SetupIntent and is posted like a typed card, and the wallet's sheet is told how it
went. The server side of the same flow: tests/billing/test_wallet_payments.py."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.environment import require

ROOT = Path(__file__).resolve().parents[1]
NODE = shutil.which("node")


@pytest.fixture(autouse=True)
def _node() -> None:
    require(NODE is not None, "node is not installed: card.js not run")


SUCCEEDED = {"error": None, "setupIntent": {"id": "seti_1", "status": "succeeded"}}


def run_card_js(**scenario: Any) -> dict[str, Any]:
    scenario = {
        "payment_request": True,
        "can_make_payment": {"applePay": True},
        "confirm_results": [],
    } | scenario
    assert NODE is not None
    harness = ROOT / "tests" / "helpers" / "card_js_harness.js"
    result = subprocess.run(
        [NODE, str(harness), str(ROOT / "static" / "js" / "card.js"), json.dumps(scenario)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return dict(json.loads(result.stdout))


def wallet_buttons(seen: dict[str, Any]) -> list[dict[str, Any]]:
    return [c for c in seen["created"] if c["kind"] == "paymentRequestButton"]


def test_no_wallet_button_without_payment_request_or_without_a_wallet() -> None:
    no_api = run_card_js(payment_request=False)
    no_wallet = run_card_js(can_make_payment=None)

    for seen in (no_api, no_wallet):
        assert wallet_buttons(seen) == [] and not seen["walletShown"]
        assert [c["kind"] for c in seen["created"]] == ["card"]  # the card form is there all the same


def test_the_wallet_button_shows_the_first_charge_where_a_wallet_can_pay() -> None:
    seen = run_card_js()

    assert wallet_buttons(seen) == [{"kind": "paymentRequestButton", "hasRequest": True}]
    assert "#wallet-button" in seen["mounted"] and seen["walletShown"]
    (request,) = seen["requests"]
    assert request == {
        "country": "DE",
        "currency": "usd",
        "total": {"label": "DICOM Portal Professional", "amount": 3190},
    }


def test_the_wallets_card_confirms_the_same_setup_intent_and_is_posted_like_a_typed_card() -> None:
    seen = run_card_js(wallet_pays=True, confirm_results=[SUCCEEDED])

    assert seen["confirms"] == [
        {
            "secret": "seti_1_secret_2",
            "data": {"payment_method": "pm_from_wallet"},
            "options": {"handleActions": False},
        }
    ]
    assert seen["completes"] == ["success"]
    assert seen["submitted"] == "seti_1"


def test_a_refused_wallet_card_closes_the_sheet_as_failed_and_posts_nothing() -> None:
    refused = {"error": {"message": "Your card was declined."}}
    seen = run_card_js(wallet_pays=True, confirm_results=[refused])

    assert seen["completes"] == ["fail"]
    assert seen["submitted"] is None
    assert seen["error"] == "Your card was declined."


def test_3d_secure_for_a_wallet_card_runs_after_the_sheet_closed() -> None:
    asks = {"error": None, "setupIntent": {"id": "seti_1", "status": "requires_action"}}
    seen = run_card_js(wallet_pays=True, confirm_results=[asks, SUCCEEDED])

    assert seen["completes"] == ["success"]
    assert [c["data"] for c in seen["confirms"]] == [{"payment_method": "pm_from_wallet"}, None]
    assert seen["submitted"] == "seti_1"
