"""The study store's contract (put, get, list, delete, size), the same on local disk and Orthanc."""

from __future__ import annotations

import io
import stat
from pathlib import Path

import pydicom
import pytest

from dicomportal.studies.files import UidRewriter, read_dicom
from dicomportal.studies.orthanc import OrthancStore
from dicomportal.studies.store import LocalDiskStore, StoreError, StudyLocation, StudyStore
from tests.helpers.dicom_data import ct_series


def stored_series(slices: int = 3, salt: bytes = b"salt-for-a-test!") -> list[tuple[str, str, bytes]]:
    """A series as the ingest hands it to the store: (study uid, sop uid, rewritten bytes)."""
    rewriter = UidRewriter(salt)
    out = []
    for name, data in ct_series(slices):
        checked = read_dicom(name, data, rewriter)
        assert checked is not None
        out.append((checked.study_uid, checked.sop_uid, checked.data))
    return out


def test_put_get_list_size_delete(store: StudyStore) -> None:
    files = stored_series(3)
    where = StudyLocation(7, files[0][0])

    refs = [store.put(where, sop, data) for _, sop, data in files]

    assert sorted(refs) == store.list(where)
    assert [store.get(ref) for ref in refs] == [data for _, _, data in files]
    assert store.size(where) == sum(len(data) for _, _, data in files)
    assert store.delete(where) == 3
    assert (store.list(where), store.size(where)) == ([], 0)
    assert store.delete(where) == 0  # deleting again is not an error


def test_deleting_one_study_leaves_the_others(store: StudyStore) -> None:
    mine, theirs = stored_series(2, b"first-upload-xx!"), stored_series(2, b"second-upload-x!")
    mine_at, theirs_at = StudyLocation(1, mine[0][0]), StudyLocation(2, theirs[0][0])
    for where, files in ((mine_at, mine), (theirs_at, theirs)):
        for _, sop, data in files:
            store.put(where, sop, data)

    store.delete(mine_at)

    assert store.list(mine_at) == []
    assert [store.get(ref) for ref in store.list(theirs_at)] and store.size(theirs_at) == sum(
        len(d) for _, _, d in theirs
    )


def test_a_file_is_stored_byte_for_byte(store: StudyStore) -> None:
    (study, sop, data), *_ = stored_series(1)

    ref = store.put(StudyLocation(1, study), sop, data)

    assert pydicom.dcmread(io.BytesIO(store.get(ref))).SOPInstanceUID == sop
    assert store.get(ref) == data


def test_local_files_are_private_and_written_whole(tmp_path: Path) -> None:
    store = LocalDiskStore(tmp_path / "studies")
    (study, sop, data), *_ = stored_series(1)

    ref = store.put(StudyLocation(3, study), sop, data)

    path = tmp_path / "studies" / ref
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for directory in (tmp_path / "studies", path.parent.parent, path.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
    assert [p.name for p in path.parent.iterdir()] == [f"{sop}.dcm"]  # no temporary file left


def test_a_local_ref_cannot_reach_outside_the_store(tmp_path: Path) -> None:
    (tmp_path / "secret.dcm").write_bytes(b"not yours")
    store = LocalDiskStore(tmp_path / "studies")

    with pytest.raises(StoreError):
        store.get("../secret.dcm")


def test_a_location_must_be_a_uid() -> None:
    with pytest.raises(ValueError):
        StudyLocation(1, "../../etc")


def test_an_unreachable_orthanc_is_a_store_error() -> None:
    from dicomportal.devtools.stripe_server import free_port

    store = OrthancStore(f"http://127.0.0.1:{free_port()}", timeout=2)

    with pytest.raises(StoreError, match="not reachable"):
        store.list(StudyLocation(1, "2.25.1"))


def test_wrong_orthanc_credentials_are_a_store_error(orthanc: object) -> None:
    store = OrthancStore(orthanc.url, "portal", "wrong password", timeout=5)  # type: ignore[attr-defined]

    with pytest.raises(StoreError, match="refused the portal's credentials"):
        store.list(StudyLocation(1, "2.25.1"))
