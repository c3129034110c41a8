"""Managing a subscription in Chromium: the cancel dialog's three options (each from an active
subscription), an upgrade with its preview, and undoing a cancellation. Screenshots of the dialog
go to docs/images/."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from dicomportal.extensions import db
from dicomportal.models import Subscription, User

SHOTS = Path(__file__).resolve().parents[2] / "docs" / "images"
PASSWORD = "correct horse battery"


@pytest.fixture
def subscriber(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> Callable[[str], tuple[User, Subscription]]:
    def make(plan: str = "professional") -> tuple[User, Subscription]:
        user = make_customer()
        return user, subscribe(user, plan)

    return make


def log_in(page: Any, live_server: str, user: User) -> None:
    page.goto(f"{live_server}/auth/login?next=/account/")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("heading", name="Manage your subscription")).to_be_visible()


def open_dialog(page: Any) -> Any:
    opener = page.get_by_role("button", name="Cancel subscription")
    opener.click()
    dialog = page.get_by_role("dialog", name="Before you cancel")
    expect(dialog).to_be_visible()
    expect(dialog.get_by_role("heading", name="Before you cancel")).to_be_focused()
    return dialog


def reload_subscription(subscription: Subscription) -> Subscription:
    db.session.expire_all()
    return db.session.get_one(Subscription, subscription.id)


@pytest.mark.browser
def test_the_dialog_is_keyboard_friendly_and_pausing_updates_the_dashboard_in_place(
    page: Any, live_server: str, subscriber: Callable[[str], tuple[User, Subscription]]
) -> None:
    user, sub = subscriber("professional")
    log_in(page, live_server, user)
    dialog = open_dialog(page)
    page.screenshot(path=str(SHOTS / "cancel-dialog.png"))
    page.keyboard.press("Escape")
    expect(dialog).to_have_count(0)
    expect(page.get_by_role("button", name="Cancel subscription")).to_be_focused()

    dialog = open_dialog(page)
    url = page.url
    dialog.get_by_role("button", name="Pause my subscription").click()
    expect(dialog.get_by_role("status")).to_contain_text("Your subscription pauses on")
    page.screenshot(path=str(SHOTS / "cancel-dialog-paused.png"))
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator("#manage")).to_contain_text("Pauses on")
    expect(page.get_by_role("button", name="Resume now")).to_be_visible()
    assert page.url == url  # no page load
    assert reload_subscription(sub).pause_starts_at is not None


@pytest.mark.browser
def test_the_dialog_offers_cheaper_plans_with_prices_and_schedules_the_downgrade(
    page: Any, live_server: str, subscriber: Callable[[str], tuple[User, Subscription]]
) -> None:
    user, sub = subscriber("md")
    log_in(page, live_server, user)
    dialog = open_dialog(page)
    expect(dialog).to_contain_text("Switch to Patient: $9 per month")
    dialog.get_by_role("button", name=re.compile("Switch to Professional: \\$29 per month")).click()
    expect(dialog.get_by_role("status")).to_contain_text("Your plan changes to Professional")
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator("#manage")).to_contain_text("Changes to Professional")
    expect(page.get_by_role("button", name="Withdraw change")).to_be_visible()
    assert reload_subscription(sub).scheduled_price is not None


@pytest.mark.browser
def test_cancel_with_a_reason_then_undo_the_cancellation(
    page: Any, live_server: str, subscriber: Callable[[str], tuple[User, Subscription]]
) -> None:
    user, sub = subscriber("professional")
    log_in(page, live_server, user)
    dialog = open_dialog(page)
    dialog.get_by_label("Why are you cancelling? (optional)").select_option("too_expensive")
    dialog.get_by_label("Anything you'd like to tell us? (optional)").fill("Budget cuts this year")
    page.screenshot(path=str(SHOTS / "cancel-dialog-reason.png"))
    dialog.get_by_role("button", name="Cancel at period end").click()
    expect(dialog.get_by_role("status")).to_contain_text("It stays active until")
    dialog.get_by_role("button", name="Close").click()
    expect(page.locator("#manage")).to_contain_text("Active until")
    assert reload_subscription(sub).cancel_reason == "too_expensive; Budget cuts this year"

    page.get_by_role("button", name="Undo cancellation").click()
    expect(page.locator("#manage-result")).to_contain_text("Your cancellation is undone")
    expect(page.get_by_role("button", name="Cancel subscription")).to_be_visible()
    expect(page.locator("#current-plan")).to_contain_text("Renews on")
    assert not reload_subscription(sub).cancel_at_period_end


@pytest.mark.browser
def test_an_upgrade_shows_its_preview_and_confirm_charges_that_amount(
    page: Any, live_server: str, subscriber: Callable[[str], tuple[User, Subscription]]
) -> None:
    user, sub = subscriber("patient")
    log_in(page, live_server, user)
    page.get_by_role("button", name="Change plan").click()
    expect(page.get_by_role("heading", name="Change plan", exact=True)).to_be_visible()
    page.get_by_role("button", name="MD, $79 per month").click()
    preview = page.locator("#preview")
    expect(preview).to_contain_text("Charged now: $70")
    expect(preview).to_contain_text("Unused time on Patient (monthly)")
    page.screenshot(path=str(SHOTS / "change-plan-preview.png"), full_page=True)
    preview.get_by_role("button", name="Confirm").click()
    expect(page.get_by_role("status").filter(has_text="You're now on MD")).to_be_visible()
    expect(page.locator("#current-plan")).to_contain_text("MD")
    assert reload_subscription(sub).price.plan.code == "md"
