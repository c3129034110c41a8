"""The studies pages: another account's study is a 404, the GDPR zip, the meter, the plain forms."""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Callable

import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.extensions import db
from dicomportal.models import Instance, Study, SubscriptionStatus, User
from dicomportal.studies.errors import StudyNotFound
from dicomportal.studies.library import get_instance, get_series, read_instance
from tests.helpers.dicom_data import ct_series
from tests.helpers.studies import Backend, login
from tests.studies.test_upload import upload, visible_studies


@pytest.fixture
def someone_elses_study(app: Flask, make_customer: Callable[..., User]) -> Study:
    """A study uploaded by another customer, through the real upload."""
    other = make_customer("other@example.com")
    other_client = app.test_client()
    login(other_client, other)
    assert upload(other_client, ct_series(2, description="NOT YOURS")).status_code == 303
    [study] = visible_studies(other)
    return study


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/studies/{id}"),
        ("GET", "/studies/{id}/delete"),
        ("POST", "/studies/{id}/delete"),
    ],
)
def test_another_accounts_study_is_not_found(
    method: str, path: str, client: FlaskClient, customer: User, someone_elses_study: Study
) -> None:
    response = client.open(path.format(id=someone_elses_study.id), method=method)

    assert response.status_code == 404
    assert "We could not find that page." in response.get_data(as_text=True)
    assert db.session.get(Study, someone_elses_study.id).deleted_at is None  # type: ignore[union-attr]


def test_another_accounts_series_and_images_are_not_found(customer: User, someone_elses_study: Study) -> None:
    series = someone_elses_study.series[0]
    instance = db.session.scalars(
        db.select(Instance).where(Instance.study_id == someone_elses_study.id)
    ).first()
    assert instance is not None

    for lookup in (
        lambda: get_series(customer.id, series.id),
        lambda: get_instance(customer.id, instance.id),
        lambda: read_instance(customer.id, instance.id),
    ):
        with pytest.raises(StudyNotFound):
            lookup()


def test_another_accounts_studies_are_not_listed_or_exported(
    client: FlaskClient, customer: User, someone_elses_study: Study
) -> None:
    upload(client, ct_series(1, description="MINE"))

    page = client.get("/studies/").get_data(as_text=True)
    archive = zipfile.ZipFile(io.BytesIO(client.get("/studies/export.zip").data))

    assert "MINE" in page and "NOT YOURS" not in page
    assert not any("NOT YOURS" in name for name in archive.namelist())
    assert len([n for n in archive.namelist() if n.endswith(".dcm")]) == 1


def test_download_all_gives_every_study_as_dicom_files_and_a_list(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    upload(client, ct_series(3, description="CT HEAD"))
    upload(client, ct_series(2, description="CT KNEE"))

    response = client.get("/studies/export.zip")

    assert response.status_code == 200 and response.mimetype == "application/zip"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="dicomportal-studies-')
    archive = zipfile.ZipFile(io.BytesIO(response.data))
    assert archive.testzip() is None
    files = [n for n in archive.namelist() if n.endswith(".dcm")]
    assert len(files) == 5
    assert {n.split("/")[0].split(" ", 1)[1].rsplit(" (", 1)[0] for n in files} == {"CT HEAD", "CT KNEE"}
    images = [pydicom.dcmread(io.BytesIO(archive.read(n))) for n in files]
    assert sorted(int(i.InstanceNumber) for i in images) == [1, 1, 2, 2, 3]
    listed = list(csv.DictReader(io.StringIO(archive.read("studies.csv").decode())))
    assert sorted((r["description"], r["images"], r["modalities"]) for r in listed) == [
        ("CT HEAD", "3", "CT"),
        ("CT KNEE", "2", "CT"),
    ]


def test_the_meter_partial_shows_used_and_quota(client: FlaskClient, customer: User) -> None:
    upload(client, ct_series(2))

    response = client.get("/studies/meter", headers={"HX-Request": "true"})

    html = response.get_data(as_text=True)
    assert html.lstrip().startswith('<div id="meter"') and " of 5 GB used" in html
    assert "HX-Request" in response.headers["Vary"]
    assert 'progress value="1" max="100"' in html  # any use shows


def test_the_studies_page_shows_an_empty_library_and_the_way_to_upload(
    client: FlaskClient, customer: User
) -> None:
    html = client.get("/studies/").get_data(as_text=True)

    assert "No studies yet." in html and 'href="/studies/upload"' in html
    assert "<strong>0 bytes</strong> of 5 GB used" in html
    assert "Download all" not in html


def test_the_upload_page_works_without_javascript(client: FlaskClient, customer: User) -> None:
    html = client.get("/studies/upload").get_data(as_text=True)

    assert 'enctype="multipart/form-data"' in html and 'action="/studies/upload"' in html
    assert 'name="files" multiple' in html and "webkitdirectory" in html
    assert re.search(r'src="/static/js/upload\.[0-9a-f]{12}\.js" defer', html) and "<script>" not in html
    assert "Up to 2 GB and 5,000 files per upload, 512 MB per file." in " ".join(html.split())


def test_a_paused_customer_sees_why_uploads_are_off(
    client: FlaskClient, make_customer: Callable[..., User]
) -> None:
    login(client, make_customer(status=SubscriptionStatus.PAUSED))

    for path in ("/studies/", "/studies/upload"):
        html = client.get(path).get_data(as_text=True)
        assert "Your subscription is paused" in html
        assert 'type="file"' not in html


def test_studies_need_a_login(client: FlaskClient) -> None:
    for path in ("/studies/", "/studies/upload", "/studies/export.zip", "/studies/1"):
        response = client.get(path)
        assert response.status_code == 302 and "/auth/login" in response.headers["Location"]


def test_a_long_library_is_shown_a_hundred_studies_a_page_newest_first(
    client: FlaskClient, customer: User
) -> None:
    db.session.execute(
        db.insert(Study),
        [
            {
                "user_id": customer.id,
                "status": "ready",
                "storage_backend": "local",
                "study_instance_uid": f"2.25.{i}",
                "description": f"STUDY {i:03d}",
                "size_bytes": 1000,
            }
            for i in range(205)
        ],
    )
    db.session.commit()

    first = client.get("/studies/").get_data(as_text=True)
    last = client.get("/studies/?page=3").get_data(as_text=True)
    beyond = client.get("/studies/?page=99").get_data(as_text=True)

    assert first.count('<tr id="study-') == 100 and "STUDY 204" in first and "STUDY 104" not in first
    assert "Page 1 of 3 (205 studies)" in first and 'href="/studies/?page=2" rel="next"' in first
    assert last.count('<tr id="study-') == 5 and "STUDY 000" in last and 'rel="next"' not in last
    assert "Page 3 of 3" in beyond
