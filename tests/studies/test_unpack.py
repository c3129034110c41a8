"""What an upload holds: names, sizes, counts and zips checked before anything is read for storage."""

from __future__ import annotations

import io
import zipfile

import pytest

from dicomportal.studies.errors import UploadRefused
from dicomportal.studies.unpack import MB, UploadLimits, UploadPart, plan_entries
from tests.helpers.dicom_data import ct_series, zip_bomb, zip_of, zip_with_symlink

LIMITS = UploadLimits(max_total_bytes=50 * MB, max_file_bytes=10 * MB, max_files=20, max_zip_ratio=100)


def part(name: str, data: bytes) -> UploadPart:
    return UploadPart(name, io.BytesIO(data))


def test_files_a_folder_and_a_zip_are_all_unpacked_with_their_names() -> None:
    series = ct_series(3)
    parts = [
        part("single.dcm", series[0][1]),
        part("CD/DICOM/IMG0002", series[1][1]),
        part("scans.zip", zip_of([("inner/IMG0003.dcm", series[2][1])])),
    ]

    entries, skipped = plan_entries(parts, LIMITS)

    assert [e.name for e in entries] == ["single.dcm", "CD/DICOM/IMG0002", "scans.zip: inner/IMG0003.dcm"]
    assert [e.read() for e in entries] == [d for _, d in series]
    assert skipped == []


def test_hidden_and_system_files_are_skipped_not_refused() -> None:
    data = ct_series(1)[0][1]
    parts = [
        part("CD/.DS_Store", b"junk"),
        part("CD/Thumbs.db", b"junk"),
        part("x.zip", zip_of([("__MACOSX/._IMG1", b"junk"), ("IMG1", data), ("./CD/IMG2", data)])),
    ]

    entries, skipped = plan_entries(parts, LIMITS)

    assert [e.name for e in entries] == ["x.zip: IMG1", "x.zip: ./CD/IMG2"]
    assert sorted(skipped) == ["CD/.DS_Store", "CD/Thumbs.db", "x.zip: __MACOSX/._IMG1"]


@pytest.mark.parametrize(
    "bad_name", ["../../etc/passwd", "/etc/passwd", "ok/../../x.dcm", "C:\\Windows\\x.dcm", "..\\x.dcm"]
)
def test_a_zip_entry_pointing_outside_the_upload_is_refused(bad_name: str) -> None:
    archive = zip_of([("fine.dcm", ct_series(1)[0][1]), (bad_name, b"x")])

    with pytest.raises(UploadRefused, match=r"scans\.zip: .* has an unsafe path"):
        plan_entries([part("scans.zip", archive)], LIMITS)


def test_an_uploaded_file_whose_name_climbs_out_is_refused() -> None:
    with pytest.raises(UploadRefused, match=r"\.\./secret\.dcm has an unsafe path"):
        plan_entries([part("../secret.dcm", ct_series(1)[0][1])], LIMITS)


def test_a_symbolic_link_in_a_zip_is_refused() -> None:
    with pytest.raises(UploadRefused, match=r"links\.zip: link\.dcm is a link"):
        plan_entries([part("links.zip", zip_with_symlink())], LIMITS)


def test_a_zip_bomb_is_refused_before_it_is_unpacked() -> None:
    bomb = zip_bomb(64)
    assert len(bomb) < MB // 5  # about 64 KB that would unpack to 64 MB

    with pytest.raises(UploadRefused, match=r"bomb\.zip unpacks to 64 MB, over 100 times its own size"):
        plan_entries([part("bomb.zip", bomb)], LIMITS)


def test_a_zip_unpacking_past_the_upload_limit_is_refused() -> None:
    limits = UploadLimits(max_total_bytes=2 * MB, max_file_bytes=10 * MB, max_files=20, max_zip_ratio=10_000)

    with pytest.raises(
        UploadRefused, match=r"This upload is 3 MB unpacked; the limit for one upload is 2 MB"
    ):
        plan_entries([part("big.zip", zip_bomb(3))], limits)


def test_a_zip_with_too_many_entries_is_refused() -> None:
    archive = zip_of((f"IMG{i}", b"x") for i in range(21))

    with pytest.raises(UploadRefused, match=r"many\.zip holds 21 files; one upload may hold 20"):
        plan_entries([part("many.zip", archive)], LIMITS)


def test_a_file_over_the_size_limit_is_refused_by_name() -> None:
    limits = UploadLimits(max_total_bytes=50 * MB, max_file_bytes=1 * MB, max_files=20, max_zip_ratio=100)

    with pytest.raises(UploadRefused, match=r"^huge\.dcm is 1\.5 MB; the limit for one file is 1 MB"):
        plan_entries([part("huge.dcm", bytes(3 * MB // 2))], limits)


def test_an_encrypted_zip_is_refused() -> None:
    archive = bytearray(zip_of([("IMG1", b"ciphertext")], compression=zipfile.ZIP_STORED))
    for header, flags_at in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):  # set "encrypted" in both headers
        archive[archive.index(header) + flags_at] |= 0x1

    with pytest.raises(UploadRefused, match="password-protected"):
        plan_entries([part("locked.zip", bytes(archive))], LIMITS)


def test_a_damaged_zip_entry_is_refused_when_read() -> None:
    data = ct_series(1)[0][1]
    archive = bytearray(zip_of([("IMG1", data)], compression=zipfile.ZIP_STORED))
    archive[archive.index(b"DICM") + 10] ^= 0xFF  # one byte changed: the CRC no longer matches

    entries, _ = plan_entries([part("bad.zip", bytes(archive))], LIMITS)

    with pytest.raises(UploadRefused, match=r"bad\.zip: IMG1 is damaged in the zip"):
        entries[0].read()


def test_an_empty_upload_is_refused() -> None:
    with pytest.raises(UploadRefused, match="Choose DICOM files"):
        plan_entries([], LIMITS)
