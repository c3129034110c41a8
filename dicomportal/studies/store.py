"""Where study files live: one small interface, two backends (local disk here, Orthanc in orthanc.py).

The store knows nothing of customers' rights: it is reached only through the portal's own
tables and authorization (studies/library.py). A study's files are addressed by a
:class:`StudyLocation`: the owner's id and the study's Study Instance UID *as stored*. UIDs are
rewritten per upload on ingest (studies/files.py), so no two portal studies ever share a UID, and
deleting one study's files can never touch another's, on either backend.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

LOCAL = "local"
ORTHANC = "orthanc"
BACKENDS = (LOCAL, ORTHANC)

_UID = re.compile(r"^[0-9]+(\.[0-9]+)*$")


class StoreError(Exception):
    """The store could not do what was asked (unreachable, refused, full). Nothing is implied
    about what was kept: callers clean up by deleting the whole study, which is idempotent."""


@dataclass(frozen=True)
class StudyLocation:
    """A study's place in a store: whose it is and its (rewritten) Study Instance UID."""

    owner_id: int
    study_uid: str

    def __post_init__(self) -> None:
        if not _UID.match(self.study_uid) or len(self.study_uid) > 64:
            raise ValueError(f"not a DICOM UID: {self.study_uid!r}")


class StudyStore(Protocol):
    """Study files: put, get, list, delete, size. Every method may raise :class:`StoreError`."""

    backend: str

    def put(self, where: StudyLocation, name: str, data: bytes) -> str:
        """Store one DICOM file of the study (``name`` is its SOP Instance UID); return its ref."""
        ...

    def get(self, ref: str) -> bytes:
        """The bytes of the file ``put`` returned ``ref`` for."""
        ...

    def list(self, where: StudyLocation) -> list[str]:
        """The refs of every file stored for the study (empty if none)."""
        ...

    def delete(self, where: StudyLocation) -> int:
        """Remove every file of the study; return how many. Deleting nothing is not an error."""
        ...

    def size(self, where: StudyLocation) -> int:
        """Bytes the study's files take in the store."""
        ...


class LocalDiskStore:
    """Files under ``root/<owner id>/<study uid>/<sop uid>.dcm``; directories 0700, files 0600.

    A file appears under its final name only once complete (written to a temporary name in the
    same directory, flushed to disk, then renamed), so a reader or a crash never sees half a file.
    A crash mid-write leaves a ``.tmp-*`` file inside the study's directory; the directory goes
    with the study when its pending upload is swept (studies/jobs.py).
    """

    backend = LOCAL

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root).resolve()

    def _study_dir(self, where: StudyLocation) -> Path:
        return self.root / str(int(where.owner_id)) / where.study_uid

    def _make_private_dirs(self, directory: Path) -> None:
        if not directory.is_dir():
            self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
            for path in (self.root, directory.parent, directory):
                path.mkdir(mode=0o700, exist_ok=True)
                path.chmod(0o700)  # mkdir's mode is filtered by the umask

    def put(self, where: StudyLocation, name: str, data: bytes) -> str:
        """Write ``data`` atomically as ``<sop uid>.dcm`` in the study's directory."""
        if not _UID.match(name):
            raise ValueError(f"not a DICOM UID: {name!r}")
        directory = self._study_dir(where)
        try:
            self._make_private_dirs(directory)
            final = directory / f"{name}.dcm"
            temporary = directory / f".tmp-{secrets.token_hex(8)}"
            fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            try:
                with os.fdopen(fd, "wb") as fh:
                    fh.write(data)
                    fh.flush()
                    os.fsync(fh.fileno())
                os.replace(temporary, final)
            except BaseException:
                temporary.unlink(missing_ok=True)
                raise
        except OSError as exc:
            raise StoreError(f"could not write to the study storage directory: {exc.strerror}") from exc
        return str(final.relative_to(self.root))

    def _path(self, ref: str) -> Path:
        path = (self.root / ref).resolve()
        if not path.is_relative_to(self.root) or path.suffix != ".dcm":
            raise StoreError(f"not a file of this store: {ref!r}")
        return path

    def get(self, ref: str) -> bytes:
        """Read the whole file."""
        try:
            return self._path(ref).read_bytes()
        except OSError as exc:
            raise StoreError(f"could not read a stored file: {exc.strerror}") from exc

    def list(self, where: StudyLocation) -> list[str]:
        """The study's complete files (temporary ones are not files yet)."""
        directory = self._study_dir(where)
        if not directory.is_dir():
            return []
        return sorted(str(p.relative_to(self.root)) for p in directory.glob("*.dcm"))

    def delete(self, where: StudyLocation) -> int:
        """Remove the study's directory and everything in it."""
        directory = self._study_dir(where)
        count = len(self.list(where))
        try:
            shutil.rmtree(directory)
        except FileNotFoundError:
            return 0
        except OSError as exc:
            raise StoreError(f"could not delete stored files: {exc.strerror}") from exc
        return count

    def size(self, where: StudyLocation) -> int:
        """Sum of the study's file sizes on disk."""
        return sum(p.stat().st_size for p in self._iter_files(where))

    def _iter_files(self, where: StudyLocation) -> Iterator[Path]:
        directory = self._study_dir(where)
        return directory.glob("*.dcm") if directory.is_dir() else iter(())
