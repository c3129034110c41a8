"""Subscribing in Chromium with Stripe.js as localstripe serves it: the card number goes to Stripe only.

A WSGI middleware records every request the app receives, so the tests can show that no card number
ever reached our server, only the SetupIntent id that Stripe.js confirmed.
"""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable, Iterable
from datetime import UTC
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest
from babel.dates import format_date
from flask import Flask
from playwright.sync_api import expect

from dicomportal.billing import subscriptions
from dicomportal.extensions import db
from dicomportal.models import SubscriptionStatus, User

SCREENSHOTS = Path("/tmp")
PASSWORD = "correct horse battery"
SUBSCRIBE_PATH = "/checkout/professional?interval=month"


class RequestRecorder:
    """WSGI middleware keeping each request's method, path, query string and body."""

    def __init__(self, wsgi_app: Callable[..., Iterable[bytes]]) -> None:
        self.wsgi_app = wsgi_app
        self.requests: list[bytes] = []
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        environ["wsgi.input"] = io.BytesIO(body)  # the app reads the body as if nobody had
        line = (
            f"{environ['REQUEST_METHOD']} {environ.get('PATH_INFO', '')}?{environ.get('QUERY_STRING', '')}\n"
        )
        with self.lock:
            self.requests.append(line.encode() + body)
        return self.wsgi_app(environ, start_response)

    def posts(self) -> list[bytes]:
        return [r for r in self.requests if r.startswith(b"POST ")]


@pytest.fixture
def recorder(app: Flask) -> RequestRecorder:
    """Installed before ``live_server`` serves its first request."""
    recorder = RequestRecorder(app.wsgi_app)
    app.wsgi_app = recorder  # type: ignore[method-assign]
    return recorder


def customer(email: str) -> User:
    db.session.remove()
    user = db.session.scalar(db.select(User).where(User.email == email))
    assert user is not None
    return user


def sign_up(page: Any, email: str) -> None:
    page.get_by_label("Your name").fill("Pat Lee")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()


def fill_billing_details(page: Any) -> None:
    expect(page.get_by_role("heading", name="Subscribe to Professional")).to_be_visible()
    page.get_by_label("Country").select_option("US")
    page.get_by_label("Address", exact=True).fill("1 Main St")
    page.get_by_label("City or town").fill("Springfield")
    page.get_by_label("Postal code").fill("62701")


def fill_card(page: Any, number: str) -> None:
    """Type into the five inputs localstripe's Card Element renders."""
    page.locator("#card-element input[placeholder*=number]").fill(number)
    page.locator("#card-element input[placeholder*=exp_month]").fill("12")
    page.locator("#card-element input[placeholder*=exp_year]").fill("30")
    page.locator("#card-element input[placeholder*=cvc]").fill("123")
    page.locator("#card-element input[placeholder*=postal_code]").fill("12345")


def reach_card_step(page: Any, live_server: str, email: str) -> None:
    page.goto(f"{live_server}/auth/signup?next={quote(SUBSCRIBE_PATH, safe='')}")
    sign_up(page, email)
    fill_billing_details(page)
    page.get_by_role("button", name="Continue to payment").click()
    expect(page.locator("#card-element input[placeholder*=number]")).to_be_visible()


@pytest.mark.browser
def test_a_visitor_subscribes_from_the_pricing_page_and_the_card_number_never_reaches_us(
    app: Flask, recorder: RequestRecorder, live_server: str, page: Any
) -> None:
    page.goto(f"{live_server}/plans/")
    professional = page.locator("article", has=page.get_by_role("heading", name="Professional"))
    professional.get_by_role("button", name=re.compile(r"^Subscribe")).click()  # a link styled as a button
    sign_up(page, "pat@example.com")

    fill_billing_details(page)
    page.screenshot(path=str(SCREENSHOTS / "subscribe-1-billing-details.png"), full_page=True)
    page.get_by_role("button", name="Continue to payment").click()

    expect(page.get_by_role("heading", name="Pay and subscribe")).to_be_visible()
    fill_card(page, "4242424242424242")
    page.screenshot(path=str(SCREENSHOTS / "subscribe-2-card.png"), full_page=True)
    page.get_by_role("button", name="Pay $29 and subscribe").click()

    expect(page.get_by_role("heading", name="You're subscribed to Professional")).to_be_visible()
    expect(page).to_have_url(f"{live_server}/checkout/done")
    page.screenshot(path=str(SCREENSHOTS / "subscribe-3-done.png"), full_page=True)
    page.get_by_role("button", name="Go to your account").click()

    subscription = subscriptions.live_subscription(customer("pat@example.com").id)
    assert subscription is not None and subscription.status == SubscriptionStatus.ACTIVE
    renews_on = format_date(subscription.current_period_end.astimezone(UTC).date(), "long", locale="en")
    plan = page.locator("#current-plan")
    expect(plan).to_contain_text("Professional")
    expect(plan).to_contain_text("Active")
    expect(plan).to_contain_text(f"Renews on{renews_on}")
    expect(page.locator("#card")).to_contain_text("Visa ending in 4242")
    page.screenshot(path=str(SCREENSHOTS / "subscribe-4-dashboard.png"), full_page=True)

    assert recorder.requests, "the recorder saw nothing"
    for request in recorder.requests:
        assert b"4242424242424242" not in request and b"4242 4242" not in request, request
    assert any(b"setup_intent_id=seti_" in body for body in recorder.posts())


@pytest.fixture
def csrf_enabled(app_config: dict[str, Any]) -> None:
    """This flow also proves that every form and script post carries the CSRF token."""
    app_config["WTF_CSRF_ENABLED"] = True


@pytest.mark.browser
def test_three_d_secure_is_asked_for_the_card_and_again_for_the_payment(
    csrf_enabled: None, app: Flask, recorder: RequestRecorder, live_server: str, page: Any
) -> None:
    reach_card_step(page, live_server, "sam@example.com")
    fill_card(page, "4000002500003155")
    page.get_by_role("button", name="Pay $29 and subscribe").click()

    page.get_by_role("button", name="Complete authentication").click()  # saving the card
    expect(page.get_by_role("heading", name="Confirm your payment")).to_be_visible()
    page.get_by_role("button", name="Complete authentication").click()  # the first payment

    expect(page.get_by_role("heading", name="You're subscribed to Professional")).to_be_visible()
    subscription = subscriptions.live_subscription(customer("sam@example.com").id)
    assert subscription is not None and subscription.status == SubscriptionStatus.ACTIVE
    assert all(b"4000002500003155" not in request for request in recorder.requests)
    assert all(b"csrf_token=" in body for body in recorder.posts())


@pytest.mark.browser
def test_failed_three_d_secure_leaves_no_subscription_and_says_why(
    app: Flask, live_server: str, page: Any
) -> None:
    reach_card_step(page, live_server, "kim@example.com")
    fill_card(page, "4000002500003155")
    page.get_by_role("button", name="Pay $29 and subscribe").click()
    page.get_by_role("button", name="Complete authentication").click()
    expect(page.get_by_role("heading", name="Confirm your payment")).to_be_visible()

    page.get_by_role("button", name="Fail authentication").click()

    expect(page.get_by_role("alert")).to_contain_text(
        "Authentication failed. You have not been charged and your subscription is not active."
    )
    assert subscriptions.live_subscription(customer("kim@example.com").id) is None
    page.get_by_role("button", name="Try again").click()
    expect(page.get_by_role("heading", name="Pay and subscribe")).to_be_visible()


@pytest.mark.browser
def test_declined_cards_are_explained_next_to_the_form(app: Flask, live_server: str, page: Any) -> None:
    reach_card_step(page, live_server, "lee@example.com")
    fill_card(page, "4000000000000002")  # Stripe refuses to save it: Stripe.js says so, we hear nothing
    page.get_by_role("button", name="Pay $29 and subscribe").click()
    expect(page.locator("#card-errors")).to_contain_text("declined")
    expect(page.get_by_role("button", name="Pay $29 and subscribe")).to_be_enabled()

    fill_card(page, "4000000000000341")  # saved, then declined when charged
    page.get_by_role("button", name="Pay $29 and subscribe").click()

    expect(page.locator("#card-errors")).to_have_text("Your card was declined. Nothing was charged.")
    expect(page.locator("#card-errors")).to_be_focused()
    expect(page.get_by_role("button", name="Pay $29 and subscribe")).to_be_enabled()
    assert subscriptions.live_subscription(customer("lee@example.com").id) is None
