"""One uploaded DICOM file: checked with pydicom, its patient-free metadata read, its UIDs rewritten.

Checks: a DICOM Part 10 file (128-byte preamble and ``DICM``), readable by pydicom, with the UIDs
that place it in a study, and complete: pydicom reads a truncated file without complaint, so an
element shorter than its stated length, a read that hit the end of the file, an image without
pixel data, or pixel data shorter than rows x columns x samples x frames x bits all mean the file
was cut short. Compressed pixel data is checked for a complete fragment structure, not decoded.

UIDs are rewritten per upload (see studies/orthanc.py for why): the Study, Series and SOP Instance
UIDs and every UID that refers to an instance or a frame of reference, consistently within the
upload, so references between its files still hold.
"""

from __future__ import annotations

import hashlib
import io
import re
import uuid
import warnings
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import pydicom
from pydicom.datadict import dictionary_VR, keyword_for_tag
from pydicom.dataelem import RawDataElement
from pydicom.dataset import Dataset
from pydicom.encaps import generate_fragments
from pydicom.uid import UID

DICOMDIR_CLASS = "1.2.840.10008.1.3.10"  # Media Storage Directory: a CD's index, not a study file
_REWRITTEN_UID = re.compile(r"(InstanceUID|FrameOfReferenceUID)$")
_PIXEL_TAGS = (0x7FE00010, 0x7FE00008, 0x7FE00009)  # PixelData, FloatPixelData, DoubleFloatPixelData
_UNDEFINED_LENGTH = 0xFFFFFFFF


class FileRefused(Exception):
    """This file cannot be stored; the message names it and says why, for the customer."""


@dataclass(frozen=True)
class DicomFile:
    """A checked file, ready to store: the rewritten bytes and the metadata the portal keeps."""

    name: str  # as uploaded, for messages
    data: bytes  # what is stored (UIDs rewritten)
    study_uid: str  # the rewritten UIDs
    series_uid: str
    sop_uid: str
    modality: str
    study_date: date | None
    study_description: str
    series_number: int | None
    series_description: str
    instance_number: int | None


class UidRewriter:
    """Maps each original UID to a new ``2.25.`` UID, the same one every time within this upload.

    The new UID is a hash of the original and a random salt drawn per upload, so the same file
    uploaded twice, or by two customers, becomes two unrelated studies.
    """

    def __init__(self, salt: bytes) -> None:
        self.salt = salt

    def __call__(self, original: str) -> str:
        digest = hashlib.sha256(self.salt + original.encode()).digest()
        return f"2.25.{uuid.UUID(bytes=digest[:16], version=4).int}"

    def rewrite(self, dataset: Dataset) -> None:
        """Rewrite the instance and frame-of-reference UIDs of ``dataset``, its sequences and its
        file meta (MediaStorageSOPInstanceUID), in place."""
        for tag in list(dataset.keys()):
            if tag.is_private:
                continue
            keyword = keyword_for_tag(tag)
            if _REWRITTEN_UID.search(keyword):
                element = dataset[tag]
                if element.VR == "UI" and element.value:
                    value = element.value
                    element.value = self(value) if isinstance(value, str) else [self(v) for v in value]
            elif keyword and dictionary_VR(tag) == "SQ":
                for item in dataset[tag].value or []:
                    self.rewrite(item)
        meta = getattr(dataset, "file_meta", None)
        if meta is not None and meta.get("MediaStorageSOPInstanceUID"):
            meta.MediaStorageSOPInstanceUID = self(str(meta.MediaStorageSOPInstanceUID))


def is_dicom_part10(head: bytes) -> bool:
    """True if ``head`` (the first 132 bytes or more) starts like a DICOM file."""
    return len(head) >= 132 and head[128:132] == b"DICM"


def read_dicom(name: str, data: bytes, rewriter: UidRewriter) -> DicomFile | None:
    """Check one file and return it ready to store, or None for a file that is not part of any
    study (a DICOMDIR index). :raises FileRefused: with a message naming the file."""
    if not is_dicom_part10(data):
        raise FileRefused(f"{name} is not a DICOM file.")
    dataset = _parse(name, data)
    if str(dataset.file_meta.get("MediaStorageSOPClassUID", "")) == DICOMDIR_CLASS:
        return None
    _check_complete(name, dataset)
    for keyword, label in (
        ("SOPClassUID", "SOP Class UID"),
        ("SOPInstanceUID", "SOP Instance UID"),
        ("StudyInstanceUID", "Study Instance UID"),
        ("SeriesInstanceUID", "Series Instance UID"),
    ):
        if not dataset.get(keyword):
            raise FileRefused(f"{name} is incomplete: it has no {label}.")
    try:
        rewriter.rewrite(dataset)
        out = io.BytesIO()
        dataset.save_as(out, enforce_file_format=False)
        return DicomFile(
            name=name,
            data=out.getvalue(),
            study_uid=str(dataset.StudyInstanceUID),
            series_uid=str(dataset.SeriesInstanceUID),
            sop_uid=str(dataset.SOPInstanceUID),
            modality=_text(dataset, "Modality", 16).upper(),
            study_date=_date(dataset.get("StudyDate")),
            study_description=_text(dataset, "StudyDescription", 200),
            series_number=_number(dataset.get("SeriesNumber")),
            series_description=_text(dataset, "SeriesDescription", 200),
            instance_number=_number(dataset.get("InstanceNumber")),
        )
    except FileRefused:
        raise
    except Exception as exc:  # pydicom raises many kinds on malformed values
        raise FileRefused(f"{name} is damaged and cannot be read as DICOM.") from exc


def _parse(name: str, data: bytes) -> Dataset:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            dataset = pydicom.dcmread(io.BytesIO(data))
        except Exception as exc:  # InvalidDicomError, struct.error, ValueError, EOFError...
            raise FileRefused(f"{name} is damaged and cannot be read as DICOM.") from exc
    if any("end of file" in str(w.message).lower() or "EOF" in str(w.message) for w in caught):
        raise FileRefused(f"{name} is incomplete: the file is cut short.")
    return dataset


def _check_complete(name: str, dataset: Dataset) -> None:
    truncated = FileRefused(f"{name} is incomplete: the file is cut short.")
    for tag in list(dataset.keys()):  # the raw elements, left unconverted
        raw = dataset.get_item(tag)
        if (
            isinstance(raw, RawDataElement)
            and raw.value is not None
            and raw.length != _UNDEFINED_LENGTH
            and len(raw.value) < raw.length
        ):
            raise truncated
    pixel_tag = next((t for t in _PIXEL_TAGS if t in dataset), None)
    if pixel_tag is None:
        if _is_image(dataset):
            raise truncated
        return
    raw = dataset.get_item(pixel_tag)
    value = raw.value if isinstance(raw, RawDataElement) else dataset[pixel_tag].value
    if not value:
        raise truncated
    undefined = isinstance(raw, RawDataElement) and raw.length == _UNDEFINED_LENGTH
    syntax = dataset.file_meta.get("TransferSyntaxUID")
    compressed = syntax is not None and syntax.is_transfer_syntax and syntax.is_compressed
    if undefined or compressed:
        _check_fragments(value, truncated)
    elif len(value) < _native_pixel_bytes(dataset):
        raise truncated


def _is_image(dataset: Dataset) -> bool:
    return "Rows" in dataset or "Image Storage" in UID(str(dataset.get("SOPClassUID", ""))).name


def _native_pixel_bytes(dataset: Dataset) -> int:
    bits = (
        int(dataset.get("Rows") or 0)
        * int(dataset.get("Columns") or 0)
        * int(dataset.get("SamplesPerPixel") or 1)
        * int(dataset.get("NumberOfFrames") or 1)
        * int(dataset.get("BitsAllocated") or 8)
    )
    return (bits + 7) // 8


def _check_fragments(value: bytes, truncated: FileRefused) -> None:
    try:
        body = value[8 + int.from_bytes(value[4:8], "little") :]  # after the Basic Offset Table item
        fragments = sum(1 for _ in generate_fragments(body))
    except Exception as exc:
        raise truncated from exc
    if fragments == 0:
        raise truncated


def _text(dataset: Dataset, keyword: str, length: int) -> str:
    value: Any = dataset.get(keyword)
    if value is None:
        return ""
    return " ".join(str(value).split())[:length]


def _date(value: Any) -> date | None:
    try:
        return datetime.strptime(str(value or "")[:8], "%Y%m%d").date()
    except ValueError:
        return None


def _number(value: Any) -> int | None:
    try:
        return int(value) if value not in (None, "") else None
    except (TypeError, ValueError):
        return None
