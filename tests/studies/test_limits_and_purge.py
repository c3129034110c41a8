"""Two uploads at once against one quota, the upload route's own body limit and CSRF check, and
the purge hook that deletes a customer's studies after the restore window."""

from __future__ import annotations

import io
import re
import threading
from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.extensions import db
from dicomportal.models import Study, StudyStatus, User
from dicomportal.studies import ingest
from dicomportal.studies.errors import UploadRefused
from dicomportal.studies.files import UidRewriter, read_dicom
from dicomportal.studies.ingest import ingest_upload
from dicomportal.studies.library import purge_user_data
from dicomportal.studies.quota import storage_quota_bytes, storage_used_bytes
from dicomportal.studies.store import StoreError
from dicomportal.studies.unpack import UploadPart
from tests.helpers.dicom_data import ct_series
from tests.helpers.studies import Backend, fill_storage, login
from tests.studies.test_upload import upload, visible_studies


def stored_size(files: list[tuple[str, bytes]], salt: bytes) -> int:
    rewriter = UidRewriter(salt)
    return sum(len(checked.data) for name, data in files if (checked := read_dicom(name, data, rewriter)))


def test_two_uploads_at_once_cannot_both_use_the_same_free_space(
    app: Flask, customer: User, fixed_upload_salt: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    first, second = ct_series(3), ct_series(3)
    fill_storage(customer, leave_bytes=stored_size(first, fixed_upload_salt) + 100)  # room for one only
    first_holds_the_lock = threading.Event()
    real_storage_committed = ingest.storage_committed_bytes

    def slow_first_check(user_id: int) -> int:
        if threading.current_thread().name == "first":
            first_holds_the_lock.set()
            threading.Event().wait(0.5)  # the second upload arrives while the first decides
        return real_storage_committed(user_id)

    monkeypatch.setattr(ingest, "storage_committed_bytes", slow_first_check)
    outcomes: dict[str, str] = {}

    def run(name: str, files: list[tuple[str, bytes]]) -> None:
        if name == "second":
            first_holds_the_lock.wait(10)
        with app.app_context():
            try:
                ingest_upload(customer.id, [UploadPart(n, io.BytesIO(d)) for n, d in files])
                outcomes[name] = "stored"
            except UploadRefused as exc:
                outcomes[name] = str(exc)
            finally:
                db.session.remove()

    threads = [
        threading.Thread(target=run, args=(n, f), name=n) for n, f in (("first", first), ("second", second))
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert outcomes["first"] == "stored"
    assert outcomes["second"].startswith("This upload is ")
    assert storage_used_bytes(customer.id) <= storage_quota_bytes(customer.id)


def test_the_upload_route_takes_bodies_larger_than_the_app_wide_limit(
    app: Flask, client: FlaskClient, customer: User
) -> None:
    app.config.update(MAX_CONTENT_LENGTH=64 * 1024, UPLOAD_MAX_MB=10)
    series = ct_series(12, size=64)  # about 100 KB: over the app-wide limit, within the upload's
    assert sum(len(d) for _, d in series) > 64 * 1024

    assert upload(client, series).status_code == 303
    other_route = client.post("/auth/login", data={"email": "x@example.com", "password": "y" * 100_000})
    assert other_route.status_code == 413


def test_the_upload_checks_the_csrf_token_once_its_own_limit_is_set(
    app: Flask, client: FlaskClient, customer: User
) -> None:
    app.config["WTF_CSRF_ENABLED"] = True
    series = ct_series(1)
    form = client.get("/studies/upload").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', form)
    assert token is not None

    forged = client.post(
        "/studies/upload",
        data={"files": [(io.BytesIO(series[0][1]), "a.dcm")]},
        content_type="multipart/form-data",
    )
    genuine = client.post(
        "/studies/upload",
        data={"csrf_token": token.group(1), "files": [(io.BytesIO(series[0][1]), "a.dcm")]},
        content_type="multipart/form-data",
    )

    assert forged.status_code == 400 and "The form expired" in forged.get_data(as_text=True)
    assert genuine.status_code == 303
    assert len(visible_studies(customer)) == 1


def test_purging_a_customer_deletes_their_files_and_nobody_elses(
    backend: Backend, app: Flask, client: FlaskClient, customer: User, make_customer: Callable[..., User]
) -> None:
    upload(client, ct_series(3))
    upload(client, ct_series(2))
    other = make_customer("other@example.com")
    other_client = app.test_client()
    login(other_client, other)
    upload(other_client, ct_series(2))
    mine = sum(s.size_bytes for s in visible_studies(customer))

    counts = purge_user_data(customer.id)

    assert (counts.studies, counts.files, counts.bytes, counts.left_for_sweep) == (2, 5, mine, 0)
    assert visible_studies(customer) == [] and storage_used_bytes(customer.id) == 0
    assert len(backend.stored_files()) == 2 and len(visible_studies(other)) == 1
    tombstones = db.session.scalars(db.select(Study).where(Study.user_id == customer.id)).all()
    assert {(t.status, t.files_deleted_at is not None) for t in tombstones} == {(StudyStatus.DELETED, True)}
    assert purge_user_data(customer.id).studies == 0  # running it again finds nothing more


def test_a_purge_the_store_cannot_finish_hides_the_studies_and_leaves_the_rest_to_the_sweep(
    backend: Backend, client: FlaskClient, customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicomportal.studies import library
    from dicomportal.studies.jobs import sweep_study_storage

    upload(client, ct_series(2))
    real_store_of = library.store_of

    class Down:
        def __getattr__(self, name: str) -> Any:
            raise StoreError("store unreachable (simulated)")

    monkeypatch.setattr(library, "store_of", lambda study: Down())

    counts = purge_user_data(customer.id)

    assert (counts.studies, counts.left_for_sweep) == (0, 1)
    assert visible_studies(customer) == [] and len(backend.stored_files()) == 2
    monkeypatch.setattr(library, "store_of", real_store_of)
    assert +sweep_study_storage() == {"deleted_files_removed": 1}
    assert backend.stored_files() == []


def test_a_study_deleted_while_the_store_is_down_disappears_at_once_and_its_files_at_the_next_sweep(
    backend: Backend, client: FlaskClient, customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dicomportal.studies import library
    from dicomportal.studies.jobs import sweep_study_storage

    upload(client, ct_series(2))
    [study] = visible_studies(customer)
    real_store_of = library.store_of

    class Down:
        def __getattr__(self, name: str) -> Any:
            raise StoreError("store unreachable (simulated)")

    monkeypatch.setattr(library, "store_of", lambda study: Down())

    assert client.post(f"/studies/{study.id}/delete").status_code == 303

    assert visible_studies(customer) == [] and storage_used_bytes(customer.id) == 0
    assert len(backend.stored_files()) == 2
    monkeypatch.setattr(library, "store_of", real_store_of)
    assert +sweep_study_storage() == {"deleted_files_removed": 1}
    assert backend.stored_files() == []
    assert +sweep_study_storage() == {}
