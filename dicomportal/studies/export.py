"""Download all my studies (GDPR): one zip, streamed as it is built, never held whole.

Layout: ``<study date> <description> (<id>)/<series number> <modality> <series description>/
<instance number>_<id>.dcm``, plus ``studies.csv`` listing what the portal records about each
study. Files are stored in the zip uncompressed: DICOM compresses poorly and a large export
should cost the server I/O, not minutes of CPU.
"""

from __future__ import annotations

import csv
import io
import re
import zipfile
from collections.abc import Iterator

from sqlalchemy import select

from dicomportal import clock
from dicomportal.extensions import db
from dicomportal.models import Series, Study
from dicomportal.studies.library import list_studies, require_access, study_files

_UNSAFE = re.compile(r"[^A-Za-z0-9 ._-]+")


class _Pipe(io.RawIOBase):
    """A write-only, non-seekable stream whose bytes are taken out as they come (zipfile then
    writes data descriptors instead of seeking back)."""

    def __init__(self) -> None:
        self._chunks: list[bytes] = []

    def writable(self) -> bool:
        return True

    def write(self, data: bytes) -> int:  # type: ignore[override]
        self._chunks.append(bytes(data))
        return len(data)

    def take(self) -> bytes:
        out = b"".join(self._chunks)
        self._chunks.clear()
        return out


def export_filename() -> str:
    """The download's name, dated today."""
    return f"dicomportal-studies-{clock.now():%Y-%m-%d}.zip"


def export_studies_zip(user_id: int) -> Iterator[bytes]:
    """The customer's studies as zip bytes, chunk by chunk.

    :raises StudiesUnavailable: at once, before the first chunk.
    """
    require_access(user_id)
    studies = list_studies(user_id)
    return _stream(studies)


def _stream(studies: list[Study]) -> Iterator[bytes]:
    pipe = _Pipe()
    with zipfile.ZipFile(pipe, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as archive:
        manifest = io.StringIO()
        writer = csv.writer(manifest)
        writer.writerow(
            ["folder", "uploaded_at", "study_date", "modalities", "description", "series", "images", "bytes"]
        )
        for study in studies:
            folder = _study_folder(study)
            writer.writerow(
                [
                    folder,
                    study.created_at.isoformat(timespec="seconds"),
                    study.study_date.isoformat() if study.study_date else "",
                    study.modalities,
                    study.description,
                    study.series_count,
                    study.image_count,
                    study.size_bytes,
                ]
            )
            series_folders = _series_folders(study)
            for instance, data in study_files(study):
                file_name = f"{instance.instance_number or 0:05d}_{instance.id}.dcm"
                archive.writestr(_entry(f"{folder}/{series_folders[instance.series_id]}/{file_name}"), data)
                yield pipe.take()
        archive.writestr(_entry("studies.csv"), manifest.getvalue())
    yield pipe.take()


def _entry(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=clock.now().timetuple()[:6])
    info.external_attr = 0o600 << 16
    return info


def _study_folder(study: Study) -> str:
    date = study.study_date.isoformat() if study.study_date else "undated"
    return _safe(f"{date} {(study.description or 'study')[:50]}") + f" ({study.id})"


def _series_folders(study: Study) -> dict[int, str]:
    rows = db.session.execute(
        select(Series.id, Series.series_number, Series.modality, Series.description).where(
            Series.study_id == study.id
        )
    ).all()
    return {
        series_id: _safe(f"{number or 0:03d} {modality} {description[:50]}") + f" ({series_id})"
        for series_id, number, modality, description in rows
    }


def _safe(text: str) -> str:
    return " ".join(_UNSAFE.sub("_", text).split())[:80].strip(" .") or "untitled"
