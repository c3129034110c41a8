"""In Chromium: upload the demo series as a zip (the progress bar shows), open it in the viewer,
share it, open the link in a fresh browser context without an account, revoke it, and see the link
refused."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import expect

from dicomportal.models import User
from dicomportal.studies import ingest
from dicomportal.studies.demo import CT_HEAD
from tests.helpers.dicom_data import zip_of
from tests.studies.test_upload_browser import SCREENSHOTS, log_in


@pytest.mark.browser
def test_upload_view_share_open_revoke_and_refused(
    page: Any,
    _browser: Any,
    live_server: str,
    make_customer: Callable[..., User],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real_store_files = ingest.store_files

    def slow_store_files(*args: Any) -> Any:
        time.sleep(1.0)  # long enough for the screenshot of the progress bar
        return real_store_files(*args)

    monkeypatch.setattr(ingest, "store_files", slow_store_files)
    SCREENSHOTS.mkdir(exist_ok=True)
    log_in(page, live_server, make_customer())
    archive = zip_of((path.name, path.read_bytes()) for path in CT_HEAD.files())

    page.goto(f"{live_server}/studies/upload")
    page.set_input_files(
        "#upload-files", files=[{"name": "demo-ct.zip", "mimeType": "application/zip", "buffer": archive}]
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("#upload-progress")).to_be_visible()
    page.screenshot(path=str(SCREENSHOTS / "share-1-upload-progress.png"), full_page=True)
    expect(page).to_have_url(re.compile(r"/studies/$"))
    expect(page.locator(".toast")).to_contain_text("Uploaded 1 study: 108 images")

    page.get_by_role("link", name="Open in the viewer").first.click()
    expect(page).to_have_url(re.compile(r"/viewer/s\d+"))
    viewer_image = page.locator("#viewer img").first
    expect(viewer_image).to_be_visible()
    page.wait_for_function(
        "() => [...document.querySelectorAll('#viewer img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.screenshot(path=str(SCREENSHOTS / "share-2-viewer-owner.png"), full_page=True)
    study_id = re.search(r"/viewer/s(\d+)", page.url).group(1)  # type: ignore[union-attr]

    page.goto(f"{live_server}/studies/{study_id}")
    page.get_by_label("Link expires after").fill("3")
    page.get_by_role("button", name="Create link").click()
    link_box = page.get_by_label("Share link")
    expect(link_box).to_be_visible()
    link = link_box.input_value()
    assert re.match(rf"{re.escape(live_server)}/viewer/shared-[\w-]+$", link), link
    page.screenshot(path=str(SCREENSHOTS / "share-3-study-with-link.png"), full_page=True)

    stranger = _browser.new_context(viewport={"width": 1280, "height": 900})
    visitor = stranger.new_page()
    visitor.goto(link)
    expect(visitor.locator("#viewer-title")).to_be_visible()
    expect(visitor.get_by_role("link", name="Log in").first).to_be_visible()  # no account here
    visitor.wait_for_function(
        "() => [...document.querySelectorAll('#viewer img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    visitor.screenshot(path=str(SCREENSHOTS / "share-4-recipient-viewer.png"), full_page=True)

    page.reload()
    expect(page.locator("#shares tbody tr").first).to_contain_text("Active")
    expect(page.locator("#shares tbody tr td.num").first).to_have_text("1")  # the opening is counted
    page.get_by_role("button", name="Revoke").click()
    expect(page.locator("#shares tbody tr").first).to_contain_text("Revoked")
    page.screenshot(path=str(SCREENSHOTS / "share-5-revoked.png"), full_page=True)

    response = visitor.goto(link)
    assert response is not None and response.status == 404
    expect(visitor.get_by_role("heading", name="This link does not open")).to_be_visible()
    expect(visitor.locator("main")).to_contain_text("it has expired or was revoked")
    visitor.screenshot(path=str(SCREENSHOTS / "share-6-refused.png"), full_page=True)
    stranger.close()
