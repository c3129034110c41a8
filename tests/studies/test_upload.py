"""Upload, list, open, delete and quota, through the pages, on local disk and on a real Orthanc."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import pydicom
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.extensions import db
from dicomportal.models import Instance, Series, Study, StudyStatus, Subscription, SubscriptionStatus, User
from dicomportal.studies.library import open_study_files, read_instance
from dicomportal.studies.quota import format_bytes, storage_used_bytes
from tests.helpers.dicom_data import CT_DESCRIPTION, PATIENT_ID, PATIENT_NAME, ct_series, zip_of
from tests.helpers.studies import Backend, fill_storage, login, patient_data_in_tables

Files = list[tuple[str, bytes]]


def upload(client: FlaskClient, files: Files, htmx: bool = False) -> object:
    """POST the files the way the upload form does (``files`` fields, names as the browser sends)."""
    data = {"files": [(io.BytesIO(content), name) for name, content in files]}
    headers = {"HX-Request": "true"} if htmx else {}
    return client.post("/studies/upload", data=data, content_type="multipart/form-data", headers=headers)


def visible_studies(user: User) -> list[Study]:
    return list(
        db.session.scalars(
            db.select(Study).where(Study.user_id == user.id, Study.status == StudyStatus.READY)
        )
    )


def test_a_ct_series_uploads_into_one_study_with_its_metadata(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    series = ct_series(5)

    response = upload(client, series)

    assert response.status_code == 303 and response.headers["Location"].endswith("/studies/")
    page = client.get("/studies/").get_data(as_text=True)
    assert "Uploaded 1 study: 5 images" in page
    [study] = visible_studies(customer)
    assert (study.description, study.modalities, str(study.study_date)) == (
        CT_DESCRIPTION,
        "CT",
        "2024-03-15",
    )
    assert (study.series_count, study.image_count, study.storage_backend) == (1, 5, backend.name)
    assert (
        study.size_bytes
        == sum(len(d) for d in _stored_bytes(customer, study))
        == storage_used_bytes(customer.id)
    )
    row = re.search(rf'<tr id="study-{study.id}">(.*?)</tr>', page, re.S)
    assert row is not None
    cells = [
        re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<td[^>]*>(.*?)</td>", row.group(1), re.S)
    ]
    assert cells[:6] == [CT_DESCRIPTION, "CT", "2024-03-15", "1", "5", format_bytes(study.size_bytes)]
    assert len(backend.stored_files()) == 5


def test_stored_files_keep_the_images_and_the_portal_keeps_no_patient_data(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    series = ct_series(3)
    upload(client, series)
    [study] = visible_studies(customer)

    stored = [pydicom.dcmread(io.BytesIO(data)) for data in _stored_bytes(customer, study)]
    originals = [pydicom.dcmread(io.BytesIO(data)) for _, data in series]

    assert [s.PixelData for s in stored] == [o.PixelData for o in originals]
    assert [int(s.InstanceNumber) for s in stored] == [1, 2, 3]
    assert {s.StudyInstanceUID for s in stored} == {study.study_instance_uid}
    assert study.study_instance_uid != originals[0].StudyInstanceUID  # rewritten per upload
    assert stored[0].PatientName == PATIENT_NAME  # the file is the customer's own, untouched
    assert patient_data_in_tables([str(PATIENT_NAME), PATIENT_ID, "Doe", "19700101"]) == []


def test_a_zip_and_a_folder_upload_the_same_way(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    first, second = ct_series(3, description="CT HEAD"), ct_series(2, description="CT KNEE")

    zipped = upload(client, [("head.zip", zip_of(first))])
    folder = upload(client, [(f"USB/DICOM/{name}", data) for name, data in second])

    assert zipped.status_code == folder.status_code == 303
    assert sorted((s.description, s.image_count) for s in visible_studies(customer)) == [
        ("CT HEAD", 3),
        ("CT KNEE", 2),
    ]
    assert len(backend.stored_files()) == 5


def test_two_series_of_one_study_are_grouped(backend: Backend, client: FlaskClient, customer: User) -> None:
    from pydicom.uid import generate_uid

    from tests.helpers.dicom_data import ct_slice

    study_uid, axial, coronal = generate_uid(), generate_uid(), generate_uid()
    files = [(f"a{i}", ct_slice(i, study_uid, axial, series_number=2)) for i in range(3)]
    files += [(f"c{i}", ct_slice(i, study_uid, coronal, series_number=3)) for i in range(2)]

    upload(client, files)

    [study] = visible_studies(customer)
    assert (study.series_count, study.image_count) == (2, 5)
    assert [(s.series_number, s.image_count) for s in study.series] == [(2, 3), (3, 2)]
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert page.count('<tr id="series-') == 2


def test_the_same_file_uploaded_by_two_customers_stays_two_separate_copies(
    backend: Backend, app: Flask, make_customer: Callable[..., User]
) -> None:
    series = ct_series(2)
    alice, bob = make_customer("alice@example.com"), make_customer("bob@example.com")
    alice_client, bob_client = app.test_client(), app.test_client()
    login(alice_client, alice)
    login(bob_client, bob)
    upload(alice_client, series)
    upload(bob_client, series)
    [alice_study], [bob_study] = visible_studies(alice), visible_studies(bob)
    assert alice_study.study_instance_uid != bob_study.study_instance_uid
    assert len(backend.stored_files()) == 4

    bob_client.post(f"/studies/{bob_study.id}/delete")

    assert bob_client.get(f"/studies/{bob_study.id}").status_code == 404
    assert alice_client.get(f"/studies/{alice_study.id}").status_code == 200
    assert len(list(open_study_files(alice.id, alice_study.id))) == 2
    assert len(backend.stored_files()) == 2


def test_uploading_the_same_series_twice_gives_two_studies(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    series = ct_series(2)

    upload(client, series)
    upload(client, series)

    assert len(visible_studies(customer)) == 2
    assert len(backend.stored_files()) == 4


def test_duplicate_files_in_one_upload_are_stored_once(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    series = ct_series(2)

    upload(client, [*series, ("copy-of-IMG0001.dcm", series[0][1])])

    [study] = visible_studies(customer)
    assert study.image_count == 2
    assert "1 duplicate files were stored once" in client.get("/studies/").get_data(as_text=True)


def test_deleting_a_study_frees_its_space_and_removes_its_files(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    upload(client, ct_series(3))
    [study] = visible_studies(customer)
    confirm = client.get(f"/studies/{study.id}/delete").get_data(as_text=True)
    assert "Delete this study?" in confirm and "3 images" in confirm

    response = client.post(f"/studies/{study.id}/delete")

    assert response.status_code == 303
    assert "Deleted CT CHEST WITH CONTRAST (3 images)." in client.get("/studies/").get_data(as_text=True)
    assert (visible_studies(customer), storage_used_bytes(customer.id), backend.stored_files()) == ([], 0, [])
    db.session.expire_all()
    tombstone = db.session.get(Study, study.id)
    assert tombstone is not None and tombstone.deleted_at and tombstone.files_deleted_at
    assert db.session.scalar(db.select(db.func.count()).select_from(Instance)) == 0
    assert db.session.scalar(db.select(db.func.count()).select_from(Series)) == 0


def test_deleting_with_htmx_returns_the_updated_list_and_meter(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    upload(client, ct_series(2, description="KEEP ME"))
    upload(client, ct_series(2, description="DROP ME"))
    drop = next(s for s in visible_studies(customer) if s.description == "DROP ME")

    response = client.post(f"/studies/{drop.id}/delete", headers={"HX-Request": "true"})

    html = response.get_data(as_text=True)
    assert response.status_code == 200 and html.lstrip().startswith('<section id="studies"')
    assert "KEEP ME" in html and "DROP ME" not in html
    assert f"<strong>{format_bytes(storage_used_bytes(customer.id))}</strong> of 5 GB used" in html
    assert '"storage-changed"' in response.headers["HX-Trigger"]


def test_an_upload_that_fits_the_quota_exactly_is_accepted_and_one_byte_more_is_not(
    backend: Backend, client: FlaskClient, customer: User, fixed_upload_salt: bytes
) -> None:
    series = ct_series(2)
    size = _upload_size(series, fixed_upload_salt)
    fill_storage(customer, leave_bytes=size - 1)
    used = storage_used_bytes(customer.id)

    refused = upload(client, series)

    assert refused.status_code == 422
    message = f"This upload is {format_bytes(size)}; you have {format_bytes(size - 1)} of 5 GB left."
    assert message in refused.get_data(as_text=True)
    assert (storage_used_bytes(customer.id), backend.stored_files()) == (used, [])

    db.session.execute(
        db.update(Study).where(Study.user_id == customer.id).values(size_bytes=Study.size_bytes - 1)
    )
    db.session.commit()
    assert upload(client, series).status_code == 303


def test_a_paused_customer_can_view_but_not_upload(
    backend: Backend, client: FlaskClient, make_customer: Callable[..., User]
) -> None:
    user = make_customer()
    login(client, user)
    upload(client, ct_series(2))
    [study] = visible_studies(user)
    db.session.execute(db.update(Subscription).values(status=SubscriptionStatus.PAUSED))
    db.session.commit()

    refused = upload(client, ct_series(2))

    assert refused.status_code == 422 and "Your subscription is paused" in refused.get_data(as_text=True)
    assert client.get("/studies/").status_code == 200
    assert client.get(f"/studies/{study.id}").status_code == 200
    assert len(list(open_study_files(user.id, study.id))) == 2
    assert len(backend.stored_files()) == 2


def test_without_a_live_subscription_there_is_no_access(
    client: FlaskClient, make_customer: Callable[..., User]
) -> None:
    user = make_customer(status=SubscriptionStatus.ENDED)
    login(client, user)

    assert client.get("/studies/").status_code == 403
    assert "Choose a plan" in client.get("/studies/upload").get_data(as_text=True)
    refused = upload(client, ct_series(1))
    assert refused.status_code == 403
    assert client.get("/studies/export.zip").status_code == 403


def test_the_viewer_api_reads_each_image_of_the_customers_own_study(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    upload(client, ct_series(3))
    [study] = visible_studies(customer)

    files = list(open_study_files(customer.id, study.id))

    assert [instance.instance_number for instance, _ in files] == [1, 2, 3]
    first, data = files[0]
    assert read_instance(customer.id, first.id) == data
    assert pydicom.dcmread(io.BytesIO(data)).SOPInstanceUID == first.sop_instance_uid


def _stored_bytes(user: User, study: Study) -> list[bytes]:
    return [data for _, data in open_study_files(user.id, study.id)]


def _upload_size(files: Files, salt: bytes) -> int:
    """The bytes an upload will take once stored (its UIDs rewritten), as the ingest counts them."""
    from dicomportal.studies.files import UidRewriter, read_dicom

    rewriter = UidRewriter(salt)
    total = 0
    for name, data in files:
        checked = read_dicom(name, data, rewriter)
        assert checked is not None
        total += len(checked.data)
    return total
