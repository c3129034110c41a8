"""Checking one uploaded file: DICOM or not, complete or cut short, and its UIDs rewritten."""

from __future__ import annotations

import io

import pydicom
import pytest
from pydicom.uid import generate_uid

from dicomportal.studies.files import FileRefused, UidRewriter, read_dicom
from tests.helpers.dicom_data import (
    CT_DESCRIPTION,
    PATIENT_ID,
    PATIENT_NAME,
    ct_series,
    ct_slice,
    dicomdir,
    jpeg_slice,
    structured_report,
)


def rewriter() -> UidRewriter:
    return UidRewriter(b"0123456789abcdef")


def test_a_ct_slice_is_read_with_its_patient_free_metadata() -> None:
    name, data = ct_series(1)[0]

    checked = read_dicom(name, data, rewriter())

    assert checked is not None
    assert (checked.modality, checked.study_date.isoformat() if checked.study_date else None) == (
        "CT",
        "2024-03-15",
    )
    assert (checked.study_description, checked.series_description) == (CT_DESCRIPTION, "Axial 1mm")
    assert (checked.series_number, checked.instance_number) == (2, 1)
    assert not any(
        PATIENT_NAME in str(v) or PATIENT_ID in str(v) for v in vars(checked).values() if v != checked.data
    )


def test_uids_are_rewritten_consistently_and_the_rest_of_the_file_is_kept() -> None:
    study, series = generate_uid(), generate_uid()
    image = ct_slice(0, study, series)
    original = pydicom.dcmread(io.BytesIO(image))
    report = structured_report(study, generate_uid(), referenced_sop=original.SOPInstanceUID)
    same_upload = rewriter()

    checked_image = read_dicom("a.dcm", image, same_upload)
    checked_report = read_dicom("b.dcm", report, same_upload)

    assert checked_image is not None and checked_report is not None
    stored = pydicom.dcmread(io.BytesIO(checked_image.data))
    assert stored.StudyInstanceUID != study and stored.StudyInstanceUID.startswith("2.25.")
    assert stored.SOPInstanceUID != original.SOPInstanceUID
    assert stored.file_meta.MediaStorageSOPInstanceUID == stored.SOPInstanceUID
    assert stored.FrameOfReferenceUID != original.FrameOfReferenceUID
    assert stored.SOPClassUID == original.SOPClassUID  # class UIDs are standard, never rewritten
    assert stored.PixelData == original.PixelData
    assert (stored.PatientName, stored.Rows) == (original.PatientName, original.Rows)
    # Within one upload, the report still points at the image and shares its study.
    referenced = pydicom.dcmread(io.BytesIO(checked_report.data)).CurrentRequestedProcedureEvidenceSequence[0]
    assert referenced.ReferencedSOPInstanceUID == stored.SOPInstanceUID
    assert checked_report.study_uid == checked_image.study_uid


def test_the_same_file_in_two_uploads_gets_two_different_uids() -> None:
    name, data = ct_series(1)[0]

    first = read_dicom(name, data, UidRewriter(b"upload-one-salt!"))
    second = read_dicom(name, data, UidRewriter(b"upload-two-salt!"))

    assert first is not None and second is not None
    assert first.sop_uid != second.sop_uid and first.study_uid != second.study_uid


def test_a_text_file_is_refused_by_name() -> None:
    with pytest.raises(FileRefused, match=r"^notes\.txt is not a DICOM file\.$"):
        read_dicom("notes.txt", b"Patient notes: nothing to see here.\n" * 10, rewriter())


@pytest.mark.parametrize("keep", [0.99, 0.9, 0.6])
def test_a_slice_cut_short_anywhere_in_its_pixels_is_refused(keep: float) -> None:
    _, data = ct_series(1, size=32)[0]

    with pytest.raises(FileRefused, match=r"^cut\.dcm is incomplete: the file is cut short\.$"):
        read_dicom("cut.dcm", data[: int(len(data) * keep)], rewriter())


def test_a_slice_cut_before_its_pixels_is_refused() -> None:
    _, data = ct_series(1, size=32)[0]
    before_pixels = data.index(b"\xe0\x7f\x10\x00")  # the Pixel Data tag

    with pytest.raises(FileRefused, match="incomplete"):
        read_dicom("cut.dcm", data[:before_pixels], rewriter())


def test_a_slice_cut_inside_a_header_value_is_refused() -> None:
    _, data = ct_series(1)[0]
    inside_description = data.index(CT_DESCRIPTION.encode()) + 5

    with pytest.raises(FileRefused, match=r"cut short|damaged"):
        read_dicom("cut.dcm", data[:inside_description], rewriter())


def test_a_file_without_the_uids_that_place_it_in_a_study_is_refused() -> None:
    _, data = ct_series(1)[0]
    dataset = pydicom.dcmread(io.BytesIO(data))
    del dataset.SeriesInstanceUID
    out = io.BytesIO()
    dataset.save_as(out)

    with pytest.raises(FileRefused, match="has no Series Instance UID"):
        read_dicom("x.dcm", out.getvalue(), rewriter())


def test_compressed_pixel_data_is_checked_for_completeness_not_decoded() -> None:
    data = jpeg_slice(generate_uid(), generate_uid())

    assert read_dicom("jpeg.dcm", data, rewriter()) is not None
    with pytest.raises(FileRefused, match=r"incomplete|damaged"):
        read_dicom("jpeg.dcm", data[:-20], rewriter())


def test_a_dicomdir_index_is_skipped_not_stored() -> None:
    assert read_dicom("DICOMDIR", dicomdir(), rewriter()) is None
