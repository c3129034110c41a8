"""An upload is stored whole or not at all, whatever fails and wherever the process dies.

Failures inside the process (the store refusing a file, the final commit failing, the store
going away during the clean-up) are undone at once or by the sweep. Crashes are real: the upload
runs in a child process that is ended with ``os._exit`` at each step (after its rows are
committed, after some files are stored, just before the commit that makes the studies visible,
in the middle of its own clean-up). After each, nothing is visible to the customer; the sweep
then removes the files and the rows, and only once the upload has been silent long enough.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask

from dicomportal import clock
from dicomportal.extensions import db
from dicomportal.models import Instance, Series, Study, StudyStatus, User
from dicomportal.studies import ingest
from dicomportal.studies.errors import UploadFailed
from dicomportal.studies.ingest import STALE_AFTER, ingest_upload
from dicomportal.studies.jobs import sweep_study_storage
from dicomportal.studies.library import list_studies
from dicomportal.studies.quota import storage_used_bytes
from dicomportal.studies.store import StoreError, StudyLocation, StudyStore
from dicomportal.studies.unpack import UploadPart
from tests.helpers.dicom_data import ct_series
from tests.helpers.studies import Backend

SLICES = 5


class FlakyStore:
    """The real store, except that ``put`` fails from the ``fail_at``-th file (and ``delete``
    too, while ``delete_fails``)."""

    def __init__(self, real: StudyStore, fail_at: int, delete_fails: bool = False) -> None:
        self.real, self.fail_at, self.delete_fails = real, fail_at, delete_fails
        self.backend = real.backend
        self.puts = 0

    def put(self, where: StudyLocation, name: str, data: bytes) -> str:
        self.puts += 1
        if self.puts >= self.fail_at:
            raise StoreError("disk full (simulated)")
        return self.real.put(where, name, data)

    def delete(self, where: StudyLocation) -> int:
        if self.delete_fails:
            raise StoreError("store unreachable (simulated)")
        return self.real.delete(where)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def parts() -> list[UploadPart]:
    import io

    return [UploadPart(name, io.BytesIO(data)) for name, data in ct_series(SLICES)]


def rows() -> dict[str, int]:
    db.session.expire_all()
    count = lambda model: db.session.scalar(db.select(db.func.count()).select_from(model))  # noqa: E731
    return {"studies": count(Study), "series": count(Series), "instances": count(Instance)}


def statuses() -> list[StudyStatus]:
    db.session.expire_all()
    return list(db.session.scalars(db.select(Study.status)))


def assert_nothing_visible(user: User) -> None:
    assert list_studies(user.id) == []
    assert storage_used_bytes(user.id) == 0


@pytest.fixture
def later() -> Iterator[None]:
    """Run the block ``STALE_AFTER`` and a minute from now (the demo clock's way), then come back."""
    yield
    clock.reset()


def travel_past_stale() -> None:
    clock.travel_to(clock.now() + STALE_AFTER + timedelta(minutes=1))


# --- failures inside the process ---------------------------------------------------------------


def test_the_store_failing_midway_removes_the_files_already_stored(
    backend: Backend, customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyStore(backend.store, fail_at=3)
    monkeypatch.setattr(ingest, "open_store", lambda config: flaky)

    with pytest.raises(UploadFailed, match=r"failed while saving your upload \(disk full \(simulated\)\)"):
        ingest_upload(customer.id, parts())

    assert flaky.puts == 3  # two files were stored before the failure
    assert (rows(), backend.stored_files()) == ({"studies": 0, "series": 0, "instances": 0}, [])


def test_the_final_commit_failing_removes_every_stored_file(
    backend: Backend, customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    def commit_fails(*_args: object) -> None:
        raise RuntimeError("database connection lost (simulated)")

    monkeypatch.setattr(ingest, "mark_ready", commit_fails)

    with pytest.raises(RuntimeError, match="simulated"):
        ingest_upload(customer.id, parts())

    assert (rows(), backend.stored_files()) == ({"studies": 0, "series": 0, "instances": 0}, [])


def test_a_clean_up_the_store_cannot_do_is_finished_by_the_sweep(
    backend: Backend, customer: User, monkeypatch: pytest.MonkeyPatch
) -> None:
    flaky = FlakyStore(backend.store, fail_at=4, delete_fails=True)
    monkeypatch.setattr(ingest, "open_store", lambda config: flaky)

    with pytest.raises(UploadFailed):
        ingest_upload(customer.id, parts())

    assert_nothing_visible(customer)
    assert statuses() == [StudyStatus.FAILED] and len(backend.stored_files()) == 3
    monkeypatch.undo()  # the store is back
    assert +sweep_study_storage() == {"upload_removed": 1}
    assert (rows(), backend.stored_files()) == ({"studies": 0, "series": 0, "instances": 0}, [])


def test_an_unreachable_orthanc_refuses_the_upload_and_keeps_nothing(
    app: Flask, customer: User, later: None
) -> None:
    from dicomportal.devtools.stripe_server import free_port

    app.config.update(
        STUDY_STORAGE="orthanc", ORTHANC_URL=f"http://127.0.0.1:{free_port()}", ORTHANC_TIMEOUT=2
    )

    with pytest.raises(UploadFailed, match=r"Orthanc at .* is not reachable"):
        ingest_upload(customer.id, parts())

    assert_nothing_visible(customer)
    assert statuses() == [StudyStatus.FAILED]  # its clean-up needs Orthanc too: the sweep retries
    assert +sweep_study_storage() == {"deferred": 1}
    assert statuses() == [StudyStatus.FAILED]


# --- real crashes, in a child process ----------------------------------------------------------

CHILD = r"""
import io, json, os, sys
from pathlib import Path

config, instance, user_id, crash_at, folder = json.loads(sys.argv[1])
from dicomportal import create_app
from dicomportal.studies import ingest
from dicomportal.studies.store import StoreError
from dicomportal.studies.unpack import UploadPart

def crash(*args, **kwargs):
    os._exit(86)

app = create_app(config, instance_path=instance)
with app.app_context():
    real_open_store = ingest.open_store

    class Store:
        def __init__(self, real):
            self.real, self.backend, self.puts = real, real.backend, 0
        def put(self, where, name, data):
            self.puts += 1
            if crash_at == "after-two-files" and self.puts == 3:
                crash()
            if crash_at == "during-clean-up" and self.puts == 3:
                raise StoreError("disk full (simulated)")
            return self.real.put(where, name, data)
        def delete(self, where):
            if crash_at == "during-clean-up":
                crash()
            return self.real.delete(where)
        def __getattr__(self, name):
            return getattr(self.real, name)

    ingest.open_store = lambda config: Store(real_open_store(config))
    if crash_at == "after-rows":
        ingest.store_files = crash
    elif crash_at == "before-commit":
        ingest.mark_ready = crash
    files = sorted(Path(folder).iterdir())
    ingest.ingest_upload(user_id, [UploadPart(p.name, io.BytesIO(p.read_bytes())) for p in files])
sys.exit(0)
"""

CHILD_SETTINGS = ("SQLALCHEMY_DATABASE_URI", "TESTING", "STUDY_STORAGE", "STUDY_STORAGE_DIR", "ORTHANC_URL")
CHILD_SETTINGS += (
    "ORTHANC_USERNAME",
    "ORTHANC_PASSWORD",
    "ORTHANC_TIMEOUT",
    "UPLOAD_MAX_MB",
    "UPLOAD_MAX_FILE_MB",
)
CHILD_SETTINGS += ("UPLOAD_MAX_FILES", "UPLOAD_ZIP_MAX_RATIO")


def upload_and_crash(app: Flask, user: User, crash_at: str, folder: Path) -> None:
    for name, data in ct_series(SLICES):
        (folder / name).write_bytes(data)
    config = {key: app.config[key] for key in CHILD_SETTINGS}
    db.session.commit()  # no transaction of ours holds a lock the child needs
    child = subprocess.run(
        [
            sys.executable,
            "-c",
            CHILD,
            json.dumps([config, app.instance_path, user.id, crash_at, str(folder)]),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert child.returncode == 86, child.stderr[-3000:]


# crash point -> (status of the rows it leaves, files it leaves in the store)
CRASHES = {
    "after-rows": (StudyStatus.PENDING, 0),
    "after-two-files": (StudyStatus.PENDING, 2),
    "before-commit": (StudyStatus.PENDING, SLICES),
    "during-clean-up": (StudyStatus.FAILED, 2),
}


@pytest.mark.parametrize("crash_at", list(CRASHES))
def test_a_crash_at_any_step_leaves_nothing_visible_and_the_sweep_leaves_nothing_at_all(
    crash_at: str, backend: Backend, app: Flask, customer: User, tmp_path: Path, later: None
) -> None:
    upload_and_crash(app, customer, crash_at, tmp_path)
    status, files_left = CRASHES[crash_at]

    assert_nothing_visible(customer)
    assert statuses() == [status]
    assert len([f for f in backend.stored_files() if ".tmp-" not in f]) == files_left

    if status == StudyStatus.PENDING:  # it might still be uploading: the sweep waits
        assert +sweep_study_storage() == {}
        assert statuses() == [status]
        travel_past_stale()
        assert +sweep_study_storage() == {"given_up": 1, "upload_removed": 1}
    else:
        assert +sweep_study_storage() == {"upload_removed": 1}

    assert (rows(), backend.stored_files()) == ({"studies": 0, "series": 0, "instances": 0}, [])
    assert_nothing_visible(customer)


def test_an_upload_that_outlives_the_sweep_is_refused_and_cleans_up_after_itself(
    backend: Backend, customer: User, monkeypatch: pytest.MonkeyPatch, later: None
) -> None:
    """A process stalled for longer than ``STALE_AFTER`` finds its upload given up by the sweep."""
    real_mark_ready = ingest.mark_ready

    def sweep_meanwhile(study_ids: list[int], refs: dict[str, str]) -> None:
        travel_past_stale()
        sweep_study_storage()
        real_mark_ready(study_ids, refs)

    monkeypatch.setattr(ingest, "mark_ready", sweep_meanwhile)

    with pytest.raises(UploadFailed, match="took too long and was given up"):
        ingest_upload(customer.id, parts())

    assert (rows(), backend.stored_files()) == ({"studies": 0, "series": 0, "instances": 0}, [])
