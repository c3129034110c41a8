"""The pricing page in a real browser: the monthly/annual toggle swaps the cards in place with htmx."""

from __future__ import annotations

import re
from typing import Any

import pytest
from playwright.sync_api import expect


@pytest.mark.browser
def test_annual_toggle_swaps_prices_in_place_and_updates_the_address(page: Any, live_server: str) -> None:
    page.goto(f"{live_server}/plans/")
    page.wait_for_function("() => window.htmx !== undefined")
    patient = page.locator("article", has=page.get_by_role("heading", name="Patient"))
    expect(patient).to_contain_text("$9 / month")
    page.evaluate("() => { window.samePage = true; }")  # a full reload would forget this

    page.get_by_role("link", name=re.compile(r"^Annual")).click()

    expect(page).to_have_url(re.compile(r"/plans/\?interval=year$"))
    expect(patient).to_contain_text("$54 / year")
    expect(patient).to_contain_text("Save 50%")
    expect(page.locator("#interval-year")).to_contain_text("Save up to 50%")
    expect(page.locator("#interval-year")).to_have_attribute("aria-current", "page")
    expect(page.locator("#interval-month")).not_to_have_attribute("aria-current", "page")
    assert page.evaluate("() => window.samePage") is True

    page.go_back()

    expect(page).to_have_url(re.compile(r"/plans/$"))
    expect(patient).to_contain_text("$9 / month")
