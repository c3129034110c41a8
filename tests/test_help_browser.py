"""The help centre's search updates the results in place as the customer types (htmx in Chromium)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.mark.browser
def test_typing_in_help_search_updates_results_in_place(page: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server}/help/")
    # A marker on the window survives an in-place swap but not a page load.
    page.evaluate("window.helpSearchMarker = 'same page'")
    page.get_by_label("Search the help centre").press_sequentially("invoice", delay=30)
    results = page.locator("#search-results")
    expect(results.locator("h2")).to_contain_text("articles match “invoice”")
    expect(results.locator("h3 a").first).to_have_text("Invoices, billing address and VAT")
    expect(results.locator("mark").first).to_contain_text("Invoice")
    assert page.evaluate("window.helpSearchMarker") == "same page"
    assert page.url.endswith("/help/?q=invoice")
