"""The app starts, serves its pages with the catalog's plans and knows which mode it is in."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from flask.testing import FlaskClient

from dicomportal import create_app


def visible_text(markup: str) -> str:
    return " ".join(re.sub(r"<[^>]+>", " ", markup).split())


def test_the_pricing_page_lists_every_plan_with_its_price_and_the_test_mode_banner(
    client: FlaskClient,
) -> None:
    response = client.get("/plans/")
    text = visible_text(response.get_data(as_text=True))

    assert response.status_code == 200
    for plan, price in (("Patient", "$9"), ("Professional", "$29"), ("MD", "$79"), ("Surgical", "$199")):
        assert re.search(rf"{plan}\b.*?{re.escape(price)}\b", text), (plan, price)
    assert "TEST MODE: payments go to a test Stripe server" in text


def test_live_stripe_keys_show_no_test_mode_banner(app_config: dict[str, Any], instance_dir: Path) -> None:
    live = {
        **app_config,
        "STRIPE_API_BASE": "",
        "STRIPE_SECRET_KEY": "sk_live_x",
        "STRIPE_PUBLISHABLE_KEY": "pk_live_x",
    }
    app = create_app(live, instance_path=str(instance_dir))
    with app.app_context():
        page = app.test_client().get("/help/").get_data(as_text=True)
    assert "TEST MODE" not in page and "Help centre" in page


def test_unknown_page_is_a_friendly_404(client: FlaskClient) -> None:
    response = client.get("/no-such-page")
    assert response.status_code == 404
    assert "Page not found" in response.get_data(as_text=True)


def test_security_headers_are_set(client: FlaskClient) -> None:
    headers = client.get("/plans/").headers
    assert "default-src 'self'" in headers["Content-Security-Policy"]
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
