"""In Chromium: the cost of building a stored study's 3D view shown before it is spent, the banner
when the credits are used up, the extra-credit cap, and the dashboard's storage panel."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from dicomportal.models import User
from dicomportal.studies import credits
from tests.helpers.dicom_data import ct_series
from tests.helpers.studies import login
from tests.studies.test_upload import upload, visible_studies
from tests.studies.test_upload_browser import SCREENSHOTS, log_in


@pytest.mark.browser
def test_credits_are_shown_before_they_are_spent_and_the_cap_is_set_in_the_browser(
    page: Any, app: Flask, live_server: str, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    helper = app.test_client()
    login(helper, user)
    upload(helper, ct_series(12, size=64, description="CT CHEST"))
    [study] = visible_studies(user)
    SCREENSHOTS.mkdir(exist_ok=True)
    log_in(page, live_server, user)

    page.goto(f"{live_server}/viewer/s{study.id}")
    page.get_by_label("3D", exact=True).check()  # the viewer asks the server what building costs
    expect(page.locator("#build-3d")).to_contain_text("uses 1 processing credit")
    expect(page.locator("#build-3d")).to_contain_text("You have 10 of 10 credits left this period.")
    page.screenshot(path=str(SCREENSHOTS / "credits-1-build-3d.png"), full_page=True)
    page.get_by_role("button", name="Build the 3D view (1 credit)").click()
    expect(page).to_have_url(re.compile(r"plane=3d"))
    expect(page.locator("#credits")).to_contain_text("9 of 10 left this period")
    page.wait_for_function(
        "() => [...document.querySelectorAll('#viewer img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(SCREENSHOTS / "credits-2-3d-built.png"), full_page=True)

    for n in range(9):
        credits.spend_credit(user.id, credits.BUILD_3D, study.id, f"2.25.{n}")
    page.goto(f"{live_server}/studies/")
    expect(page.locator("#credits-banner")).to_contain_text("Extra credits cost $0.50 each.")
    page.screenshot(path=str(SCREENSHOTS / "credits-3-banner.png"), full_page=True)

    page.get_by_role("link", name="Credits and extra credits").click()
    page.get_by_label("Monthly cap for extra credits").fill("5")
    page.get_by_role("button", name="Allow extra credits up to this cap").click()
    expect(page.locator("#current-cap")).to_contain_text("up to $5 a month (10 extra credits at $0.50)")
    page.screenshot(path=str(SCREENSHOTS / "credits-4-cap.png"), full_page=True)

    page.goto(f"{live_server}/account/")
    expect(page.locator("#storage-addons")).to_contain_text("Extra storage, 100 GB")
    expect(page.get_by_role("button", name=re.compile(r"Add Extra storage, 100 GB for \$\d"))).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "credits-5-dashboard-storage.png"), full_page=True)
