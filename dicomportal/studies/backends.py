"""Which store a study lives in: local disk or Orthanc, chosen by configuration."""

from __future__ import annotations

from collections.abc import Mapping
from functools import lru_cache
from typing import Any

from dicomportal.studies.orthanc import OrthancStore
from dicomportal.studies.store import BACKENDS, LOCAL, ORTHANC, LocalDiskStore, StudyStore


def open_store(config: Mapping[str, Any], backend: str | None = None) -> StudyStore:
    """The store for ``backend`` (default: the configured ``STUDY_STORAGE``).

    A study remembers the backend it was stored in, so studies stay readable after
    ``STUDY_STORAGE`` changes as long as their backend is still configured.
    """
    backend = backend or config["STUDY_STORAGE"]
    if backend == LOCAL:
        return LocalDiskStore(config["STUDY_STORAGE_DIR"])
    if backend == ORTHANC:
        return _orthanc(
            config["ORTHANC_URL"],
            config.get("ORTHANC_USERNAME") or None,
            config.get("ORTHANC_PASSWORD") or None,
            float(config.get("ORTHANC_TIMEOUT", 60)),
        )
    raise ValueError(f"STUDY_STORAGE must be one of {', '.join(BACKENDS)}, not {backend!r}")


@lru_cache(maxsize=8)
def _orthanc(url: str, username: str | None, password: str | None, timeout: float) -> StudyStore:
    """One client (and its pool of keep-alive connections) per Orthanc configuration."""
    return OrthancStore(url, username=username, password=password, timeout=timeout)
