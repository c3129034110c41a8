"""What an upload holds: files (a folder's files carry their relative paths) and zips of them.

Everything is checked before one byte is read for storage: names (no ``..``, no absolute or
drive paths, no links), the number of files, each file's size, the total, and for zips the
unpacked size against the archive's (a zip bomb) as declared in the central directory. Reading
an entry never returns more than its declared size (zipfile stops there and checks the CRC), so
the declared sizes are a bound on what is unpacked. Names are only ever used in messages: nothing
is written to disk under a name taken from an upload.
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import IO, Any

from dicomportal.studies.errors import UploadRefused
from dicomportal.studies.files import is_dicom_part10
from dicomportal.studies.quota import format_bytes as _mb

MB = 1024 * 1024
_JUNK_NAMES = {"thumbs.db", "desktop.ini", "__macosx"}
_DRIVE = re.compile(r"^[A-Za-z]:")


@dataclass(frozen=True)
class UploadLimits:
    """How big one upload may be (from the UPLOAD_* settings)."""

    max_total_bytes: int
    max_file_bytes: int
    max_files: int
    max_zip_ratio: int

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> UploadLimits:
        """The limits configured for this deployment."""
        return cls(
            max_total_bytes=int(config["UPLOAD_MAX_MB"]) * MB,
            max_file_bytes=int(config["UPLOAD_MAX_FILE_MB"]) * MB,
            max_files=int(config["UPLOAD_MAX_FILES"]),
            max_zip_ratio=int(config["UPLOAD_ZIP_MAX_RATIO"]),
        )


@dataclass(frozen=True)
class UploadPart:
    """One file as the browser sent it: its name (a relative path for a folder) and its bytes."""

    name: str
    stream: IO[bytes]


@dataclass(frozen=True)
class Entry:
    """One file to check: a part sent as is, or a file inside a zip."""

    name: str
    size: int
    read: Callable[[], bytes]


def plan_entries(parts: Iterable[UploadPart], limits: UploadLimits) -> tuple[list[Entry], list[str]]:
    """Every file the upload holds, after all structural checks; and the names skipped as not
    part of a study (hidden files, ``__MACOSX``, ``Thumbs.db``).

    :raises UploadRefused: an unsafe name, a zip bomb, too many files, a file or upload too big.
    """
    entries: list[Entry] = []
    skipped: list[str] = []
    for part in parts:
        name = _checked_name(part.name or "unnamed file", part.name or "")
        if _is_junk(name):
            skipped.append(name)
            continue
        size = _size_of(part.stream)
        head = part.stream.read(132)
        part.stream.seek(0)
        if not is_dicom_part10(head) and head[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
            zipped, junk = _zip_entries(name, part.stream, size, limits)
            entries.extend(zipped)
            skipped.extend(junk)
        else:
            _check_file_size(name, size, limits)
            entries.append(Entry(name, size, _reader(part.stream)))
        _check_totals(entries, limits)
    if not entries:
        raise UploadRefused("Choose DICOM files, a folder or a zip of them to upload.")
    return entries, skipped


def _size_of(stream: IO[bytes]) -> int:
    stream.seek(0, 2)
    size = stream.tell()
    stream.seek(0)
    return size


def _reader(stream: IO[bytes]) -> Callable[[], bytes]:
    def read() -> bytes:
        stream.seek(0)
        return stream.read()

    return read


def _checked_name(name: str, raw: str) -> str:
    """The name with ``/`` separators; refuses names that point outside the upload."""
    path = raw.replace("\\", "/")
    parts = path.split("/")
    if "\x00" in path or path.startswith("/") or _DRIVE.match(path) or ".." in parts:
        raise UploadRefused(f"{name} has an unsafe path (absolute or with '..'); nothing was stored.")
    return "/".join(p for p in parts if p not in ("", ".")) or name


def _is_junk(name: str) -> bool:
    parts = name.split("/")
    return any(p.startswith(".") or p.lower() in _JUNK_NAMES for p in parts)


def _check_file_size(name: str, size: int, limits: UploadLimits) -> None:
    if size > limits.max_file_bytes:
        raise UploadRefused(
            f"{name} is {_mb(size)}; the limit for one file is {_mb(limits.max_file_bytes)}. "
            "Nothing was stored."
        )


def _check_totals(entries: list[Entry], limits: UploadLimits) -> None:
    if len(entries) > limits.max_files:
        raise UploadRefused(
            f"This upload holds more than {limits.max_files:,} files, the most one upload may hold. "
            "Upload it in parts. Nothing was stored."
        )
    total = sum(e.size for e in entries)
    if total > limits.max_total_bytes:
        raise UploadRefused(
            f"This upload is {_mb(total)} unpacked; the limit for one upload is "
            f"{_mb(limits.max_total_bytes)}. Upload it in parts. Nothing was stored."
        )


def _zip_entries(
    name: str, stream: IO[bytes], size: int, limits: UploadLimits
) -> tuple[list[Entry], list[str]]:
    try:
        archive = zipfile.ZipFile(stream)
        infos = archive.infolist()
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise UploadRefused(f"{name} is not a readable zip file. Nothing was stored.") from exc
    files = [i for i in infos if not i.is_dir()]
    if len(files) > limits.max_files:
        raise UploadRefused(
            f"{name} holds {len(files):,} files; one upload may hold {limits.max_files:,}. "
            "Nothing was stored."
        )
    unpacked = sum(i.file_size for i in files)
    if unpacked > limits.max_zip_ratio * max(size, 1) and unpacked > MB:
        raise UploadRefused(
            f"{name} unpacks to {_mb(unpacked)}, over {limits.max_zip_ratio} times its own size: "
            "it looks like a zip bomb and was refused. Nothing was stored."
        )
    entries: list[Entry] = []
    junk: list[str] = []
    for info in files:
        inner = f"{name}: {info.filename}"
        path = _checked_name(inner, info.filename)
        if stat.S_ISLNK(info.external_attr >> 16):
            raise UploadRefused(
                f"{inner} is a link, which a zip for upload may not hold. Nothing was stored."
            )
        if info.flag_bits & 0x1:
            raise UploadRefused(f"{name} is password-protected; upload it unencrypted. Nothing was stored.")
        if _is_junk(path):
            junk.append(inner)
            continue
        _check_file_size(inner, info.file_size, limits)
        entries.append(Entry(inner, info.file_size, _zip_reader(archive, info, inner)))
    return entries, junk


def _zip_reader(archive: zipfile.ZipFile, info: zipfile.ZipInfo, name: str) -> Callable[[], bytes]:
    def read() -> bytes:
        try:
            with archive.open(info) as member:
                data = member.read(info.file_size + 1)
        except (zipfile.BadZipFile, OSError, EOFError, NotImplementedError, RuntimeError) as exc:
            raise UploadRefused(
                f"{name} is damaged in the zip and cannot be unpacked. Nothing was stored."
            ) from exc
        if len(data) != info.file_size:
            raise UploadRefused(f"{name} is damaged in the zip and cannot be unpacked. Nothing was stored.")
        return data

    return read
