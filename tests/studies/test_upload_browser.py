"""Uploading in Chromium: a zip with the progress bar, a whole folder, a refused file, a delete."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import expect

from dicomportal.models import User
from dicomportal.studies import ingest
from tests.helpers.dicom_data import ct_series, zip_of
from tests.helpers.studies import PASSWORD

SCREENSHOTS = Path("test-artifacts")


def log_in(page: Any, live_server: str, user: User) -> None:
    page.goto(f"{live_server}/auth/login")
    page.get_by_label("Email").fill(user.email)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    expect(page).not_to_have_url(re.compile(r"/auth/login"))


def watch_upload_status(page: Any) -> list[str]:
    """Every text the upload's status line shows, reported through the console as it changes."""
    seen: list[str] = []
    page.on(
        "console", lambda message: seen.append(message.text) if message.text.startswith("status:") else None
    )
    page.add_init_script(
        """document.addEventListener("DOMContentLoaded", () => {
             const status = document.getElementById("upload-status");
             if (!status) return;
             new MutationObserver(() => console.log("status:" + status.textContent))
               .observe(status, {childList: true, characterData: true, subtree: true});
           });"""
    )
    return seen


@pytest.mark.browser
def test_a_zip_uploads_with_a_progress_bar_and_lands_in_the_list(
    page: Any, live_server: str, make_customer: Callable[..., User], monkeypatch: pytest.MonkeyPatch
) -> None:
    real_store_files = ingest.store_files

    def slow_store_files(*args: Any) -> Any:
        time.sleep(1.0)  # long enough to see the "checking and storing" step
        return real_store_files(*args)

    monkeypatch.setattr(ingest, "store_files", slow_store_files)
    log_in(page, live_server, make_customer())
    seen = watch_upload_status(page)
    page.goto(f"{live_server}/studies/upload")
    archive = zip_of(ct_series(40, size=128, description="CT ABDOMEN"))

    page.set_input_files(
        "#upload-files", files=[{"name": "abdomen.zip", "mimeType": "application/zip", "buffer": archive}]
    )
    page.get_by_role("button", name="Upload").click()

    expect(page.locator("#upload-progress")).to_be_visible()
    expect(page.locator("#upload-status")).to_have_text("Checking and storing 1 file…")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "studies-upload-progress.png"), full_page=True)
    expect(page).to_have_url(re.compile(r"/studies/$"))
    expect(page.locator(".toast")).to_contain_text("Uploaded 1 study: 40 images")
    row = page.locator("tr", has_text="CT ABDOMEN")
    expect(row).to_contain_text("CT")
    expect(row).to_contain_text("2024-03-15")
    expect(row.locator("td").nth(4)).to_have_text("40")
    assert any(re.match(r"status:Sending .* of .* \(100%\)", s) for s in seen), seen
    page.screenshot(path=str(SCREENSHOTS / "studies-list.png"), full_page=True)


@pytest.mark.browser
def test_a_folder_uploads_with_its_paths_and_a_refused_file_is_named(
    page: Any, live_server: str, make_customer: Callable[..., User], tmp_path: Path
) -> None:
    folder = tmp_path / "USB"
    (folder / "DICOM").mkdir(parents=True)
    for name, data in ct_series(3, description="CT WRIST"):
        (folder / "DICOM" / name).write_bytes(data)
    (folder / "README.TXT").write_text("Viewer instructions")
    log_in(page, live_server, make_customer())
    page.goto(f"{live_server}/studies/upload")

    page.set_input_files("#upload-folder", str(folder))
    page.get_by_role("button", name="Upload").click()

    expect(page.locator("#upload-error")).to_contain_text(
        "USB/README.TXT is not a DICOM file. Nothing was stored."
    )
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "studies-upload-refused.png"), full_page=True)
    (folder / "README.TXT").unlink()

    page.set_input_files("#upload-folder", str(folder))
    page.get_by_role("button", name="Upload").click()

    expect(page).to_have_url(re.compile(r"/studies/$"))
    page.get_by_role("link", name="CT WRIST").click()
    expect(page.get_by_role("heading", name="CT WRIST")).to_be_visible()
    expect(page.locator("#main")).to_contain_text("3 in 1 series")
    page.screenshot(path=str(SCREENSHOTS / "studies-study.png"), full_page=True)


@pytest.mark.browser
def test_deleting_a_study_after_confirming_updates_the_list_and_the_meter(
    page: Any, live_server: str, make_customer: Callable[..., User]
) -> None:
    log_in(page, live_server, make_customer())
    page.goto(f"{live_server}/studies/upload")
    page.set_input_files(
        "#upload-files",
        files=[{"name": "s.zip", "mimeType": "application/zip", "buffer": zip_of(ct_series(4))}],
    )
    page.get_by_role("button", name="Upload").click()
    expect(page.locator("tr", has_text="CT CHEST")).to_be_visible()
    expect(page.locator("#meter")).not_to_contain_text("0 bytes of")
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.accept()))

    page.locator("tr", has_text="CT CHEST").get_by_role("link", name="Delete").click()

    expect(page.locator("tr", has_text="CT CHEST")).to_have_count(0)
    expect(page.locator("#meter")).to_contain_text("0 bytes of 5 GB used")
    expect(page.locator(".toast", has_text="Deleted CT CHEST WITH CONTRAST (4 images).")).to_be_visible()
    assert dialogs and "This cannot be undone." in dialogs[0]
