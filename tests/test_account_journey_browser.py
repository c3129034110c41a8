"""A visitor's first visit in Chromium: pricing (annual), sign up, log out, forgot password,
the emailed link, a new password, and logging in with it."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.helpers.mail import SmtpSink

EMAIL = "robin.journey@example.com"


@pytest.mark.browser
def test_visitor_compares_annual_prices_signs_up_and_resets_the_password(
    page: Any, live_server: str, smtp: SmtpSink
) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server}/plans/")
    page.get_by_role("link", name=re.compile("Annual")).click()
    cards = page.locator("#plan-cards")
    expect(cards).to_contain_text("Save up to 50%")
    expect(cards).to_contain_text("$54")  # Patient, billed yearly
    expect(cards).to_contain_text("Save 50%")
    expect(page).to_have_url(re.compile(r"interval=year"))

    cards.get_by_role("button", name=re.compile("Subscribe to Professional, billed yearly")).click()
    expect(page.get_by_role("heading", name="Create your account")).to_be_visible()
    page.get_by_label("Your name").fill("Robin Journey")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("first password 123")
    page.get_by_role("button", name="Create account").click()
    expect(page).to_have_url(re.compile(r"/checkout/professional\?interval=year"))

    page.get_by_role("button", name="Log out").click()
    expect(page.get_by_role("link", name="Log in")).to_be_visible()

    page.goto(f"{live_server}/auth/login")
    page.get_by_role("link", name="Forgot your password?").click()
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_role("button", name="Email me a reset link").click()
    expect(page.locator("main")).to_contain_text("If an account exists")

    link = re.search(r"http://\S+/auth/reset/\S+", SmtpSink.text(smtp.last_to(EMAIL)))
    assert link, "the reset email carries a link"
    page.goto(link.group(0))
    page.get_by_label("New password").fill("second password 456")
    page.get_by_role("button", name="Save new password").click()
    page.get_by_role("button", name="Log out").click()

    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("first password 123")
    page.get_by_role("button", name="Log in").click()
    expect(page.locator("main")).to_contain_text("Wrong email or password")

    page.get_by_label("Email").fill(EMAIL)
    page.get_by_label("Password").fill("second password 456")
    page.get_by_role("button", name="Log in").click()
    expect(page).to_have_url(re.compile(r"/account/"))
    expect(page.locator("main")).to_contain_text("Robin")
