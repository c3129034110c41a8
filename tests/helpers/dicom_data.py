"""Small synthetic DICOM files made with pydicom (no shipped scans): a CT volume a few slices deep,
and the broken files the upload must refuse."""

from __future__ import annotations

import io
import zipfile
from array import array
from collections.abc import Iterable

from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    generate_uid,
)

CT_DESCRIPTION = "CT CHEST WITH CONTRAST"
PATIENT_NAME = "Doe^Jane"
PATIENT_ID = "MRN-0042"


def ct_slice(
    index: int,
    study_uid: str,
    series_uid: str,
    *,
    sop_uid: str | None = None,
    size: int = 16,
    frame_of_reference: str = "1.2.3.4.5.6",
    series_number: int = 2,
    description: str = CT_DESCRIPTION,
) -> bytes:
    """One 16-bit axial CT slice (``size`` x ``size``) of a small volume, as a Part 10 file."""
    sop_uid = sop_uid or generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.FrameOfReferenceUID = frame_of_reference
    ds.PatientName = PATIENT_NAME
    ds.PatientID = PATIENT_ID
    ds.PatientBirthDate = "19700101"
    ds.Modality = "CT"
    ds.StudyDate = "20240315"
    ds.StudyDescription = description
    ds.SeriesDescription = "Axial 1mm"
    ds.SeriesNumber = series_number
    ds.InstanceNumber = index + 1
    ds.ImagePositionPatient = [0.0, 0.0, float(index)]
    ds.ImageOrientationPatient = [1.0, 0.0, 0.0, 0.0, 1.0, 0.0]
    ds.PixelSpacing = [0.7, 0.7]
    ds.SliceThickness = 1.0
    ds.Rows = size
    ds.Columns = size
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.RescaleIntercept = -1024
    ds.RescaleSlope = 1
    ramp = array("H", ((x * 40 + index * 100) % 4096 for x in range(2 * size)))
    ds.PixelData = b"".join(ramp[y % size : y % size + size].tobytes() for y in range(size))  # little-endian
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def ct_series(slices: int = 4, size: int = 16, description: str = CT_DESCRIPTION) -> list[tuple[str, bytes]]:
    """A CT series of ``slices`` slices in one study: ``[(file name, bytes), ...]``."""
    study_uid, series_uid = generate_uid(), generate_uid()
    return [
        (f"IMG{i + 1:04d}.dcm", ct_slice(i, study_uid, series_uid, size=size, description=description))
        for i in range(slices)
    ]


def structured_report(study_uid: str, series_uid: str, referenced_sop: str) -> bytes:
    """A non-image object (a Basic Text SR) in the study, referring to an image by its UID."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = "1.2.840.10008.5.1.4.1.1.88.11"
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "SR"
    ds.SeriesNumber = 99
    reference = Dataset()
    reference.ReferencedSOPClassUID = CTImageStorage
    reference.ReferencedSOPInstanceUID = referenced_sop
    ds.CurrentRequestedProcedureEvidenceSequence = Sequence([reference])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def jpeg_slice(
    study_uid: str, series_uid: str, fragment: bytes = b"\xff\xd8" + b"\x00" * 62 + b"\xff\xd9"
) -> bytes:
    """A slice with encapsulated (JPEG transfer syntax) pixel data: one fragment (not a real JPEG:
    the upload checks the structure, it does not decode)."""
    sop_uid = generate_uid()
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = CTImageStorage
    meta.MediaStorageSOPInstanceUID = sop_uid
    meta.TransferSyntaxUID = JPEGBaseline8Bit
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = CTImageStorage
    ds.SOPInstanceUID = sop_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.Modality = "CT"
    ds.Rows = 8
    ds.Columns = 8
    ds.SamplesPerPixel = 1
    ds.BitsAllocated = 8
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.PixelData = encapsulate([fragment])
    ds["PixelData"].VR = "OB"
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def dicomdir() -> bytes:
    """A minimal DICOMDIR (a CD's index): not a study file; the upload skips it."""
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = "1.2.840.10008.1.3.10"
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.FileSetID = "CD"
    ds.DirectoryRecordSequence = Sequence([])
    out = io.BytesIO()
    ds.save_as(out, enforce_file_format=True)
    return out.getvalue()


def zip_of(files: Iterable[tuple[str, bytes]], compression: int = zipfile.ZIP_DEFLATED) -> bytes:
    """A zip of ``(name, bytes)`` entries, names used as given (``../x`` included)."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=compression) as archive:
        for name, data in files:
            archive.writestr(name, data)
    return out.getvalue()


def zip_bomb(unpacked_mb: int = 64) -> bytes:
    """A small zip that unpacks to ``unpacked_mb`` MB of zeros (about 1000:1)."""
    out = io.BytesIO()
    with (
        zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive,
        archive.open("scan.dcm", "w", force_zip64=True) as entry,
    ):
        for _ in range(unpacked_mb):
            entry.write(bytes(1024 * 1024))
    return out.getvalue()


def zip_with_symlink(target: str = "/etc/passwd") -> bytes:
    """A zip whose entry is a symbolic link."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        info = zipfile.ZipInfo("link.dcm")
        info.external_attr = (0o120777 << 16) | 0x20
        info.create_system = 3
        archive.writestr(info, target)
    return out.getvalue()
