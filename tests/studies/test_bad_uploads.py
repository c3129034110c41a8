"""Bad uploads are refused whole, with a message naming the problem; storage used does not change
and nothing is left on disk or in Orthanc. Each bad file travels with good ones, so "nothing
stored" means the good files were not stored either."""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from flask.testing import FlaskClient

from dicomportal.models import User
from dicomportal.studies.quota import storage_used_bytes
from tests.helpers.dicom_data import ct_series, zip_bomb, zip_of
from tests.helpers.studies import Backend, fill_storage
from tests.studies.test_upload import upload, visible_studies

Files = list[tuple[str, bytes]]


def text_file() -> Files:
    return [*ct_series(3), ("notes.txt", b"Referral letter: see attached scans.\n" * 20)]


def truncated_dicom() -> Files:
    series = ct_series(3, size=32)
    name, data = series[1]
    return [series[0], (name, data[: len(data) * 3 // 4]), series[2]]


def zip_with_parent_paths() -> Files:
    series = ct_series(2)
    return [("scans.zip", zip_of([series[0], ("../../etc/cron.d/evil.dcm", series[1][1])]))]


def a_zip_bomb() -> Files:
    return [*ct_series(1), ("bomb.zip", zip_bomb(64))]


BAD_UPLOADS: dict[str, tuple[Callable[[], Files], str]] = {
    "text file": (text_file, r"notes\.txt is not a DICOM file\. Nothing was stored\."),
    "truncated DICOM": (
        truncated_dicom,
        r"IMG0002\.dcm is incomplete: the file is cut short\. Nothing was stored\.",
    ),
    "zip with ../": (
        zip_with_parent_paths,
        r"scans\.zip: \.\./\.\./etc/cron\.d/evil\.dcm has an unsafe path",
    ),
    "zip bomb": (
        a_zip_bomb,
        r"bomb\.zip unpacks to 64 MB, over 100 times its own size: it looks like a zip bomb",
    ),
}


@pytest.mark.parametrize("kind", list(BAD_UPLOADS))
def test_a_bad_upload_is_refused_whole_and_leaves_nothing(
    kind: str, backend: Backend, client: FlaskClient, customer: User
) -> None:
    upload(client, ct_series(2, description="ALREADY HERE"))
    files_before, used_before = backend.stored_files(), storage_used_bytes(customer.id)
    make_files, message = BAD_UPLOADS[kind]

    response = upload(client, make_files())

    assert response.status_code == 422
    assert re.search(message, _error_banner(response.get_data(as_text=True)))
    assert storage_used_bytes(customer.id) == used_before
    assert [s.description for s in visible_studies(customer)] == ["ALREADY HERE"]
    assert backend.stored_files() == files_before


def test_an_upload_over_the_quota_is_refused_with_the_numbers(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    fill_storage(customer, leave_bytes=10_000)
    used_before = storage_used_bytes(customer.id)

    response = upload(client, ct_series(4, size=64))  # about 33 KB

    assert response.status_code == 422
    assert re.search(
        r"This upload is 3\d\.\d KB; you have 9\.8 KB of 5 GB left\. Delete studies or add storage",
        _error_banner(response.get_data(as_text=True)),
    )
    assert storage_used_bytes(customer.id) == used_before
    assert backend.stored_files() == []


def test_several_bad_files_are_all_named(client: FlaskClient, customer: User) -> None:
    files = [*ct_series(1), ("a.txt", b"x" * 200), ("b.pdf", b"%PDF-1.7" + b"x" * 200)]

    response = upload(client, files)

    banner = _error_banner(response.get_data(as_text=True))
    assert "2 files were refused: a.txt is not a DICOM file. b.pdf is not a DICOM file." in banner


def test_a_refused_upload_from_the_progress_bar_gets_the_form_back_with_the_reason(
    client: FlaskClient, customer: User
) -> None:
    response = upload(client, text_file(), htmx=True)

    html = response.get_data(as_text=True)
    assert response.status_code == 422 and html.lstrip().startswith('<form id="upload-form"')
    assert "notes.txt is not a DICOM file." in _error_banner(html)


def test_an_upload_without_files_says_what_to_choose(client: FlaskClient, customer: User) -> None:
    response = client.post("/studies/upload", data={}, content_type="multipart/form-data")

    assert response.status_code == 422
    assert "Choose DICOM files, a folder or a zip of them to upload." in _error_banner(
        response.get_data(as_text=True)
    )


def test_a_body_over_the_upload_limit_is_refused_before_it_is_read(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    backend.app.config["UPLOAD_MAX_MB"] = 1

    response = upload(client, [("big.dcm", bytes(3 * 1024 * 1024))])

    assert response.status_code == 413
    assert "This upload is over 1 MB. Upload it in parts." in _error_banner(response.get_data(as_text=True))
    assert backend.stored_files() == []


def _error_banner(html: str) -> str:
    found = re.search(
        r'<div class="banner banner-error" role="alert" id="upload-error"><p>(.*?)</p>', html, re.S
    )
    assert found, html[:2000]
    return found.group(1).replace("&#39;", "'")
