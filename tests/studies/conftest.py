"""Fixtures for the DICOM tests.

Viewer: the shipped demo series and series made from it in other transfer syntaxes (GDCM
transcodes; the viewer decodes with its own plugins), in tmp dirs. Storage: a real Orthanc for the
session, the store parametrized over local disk and Orthanc, and subscribed customers made
straight in the database (no Stripe needed to upload).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.accounts import create_user
from dicomportal.extensions import db
from dicomportal.models import (
    SubscriptionStatus,
    User,
)
from dicomportal.studies import cache
from dicomportal.studies.demo import CT_HEAD
from dicomportal.studies.orthanc import OrthancStore
from dicomportal.studies.store import LocalDiskStore, StudyStore
from tests.helpers.dicom import gdcm_transcode
from tests.helpers.environment import require
from tests.helpers.orthanc import (
    ORTHANC_PASSWORD,
    ORTHANC_USER,
    OrthancDidNotStart,
    OrthancServer,
    dicomweb_plugin,
    orthanc_binary,
    running_orthanc,
)
from tests.helpers.studies import PASSWORD, Backend, login, subscribe_without_stripe

SLICES = 12  # enough of the demo CT for a volume; small enough to transcode quickly


@pytest.fixture(scope="session")
def ct_subset(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The middle SLICES images of the demo CT, decompressed (Explicit VR Little Endian)."""
    out = tmp_path_factory.mktemp("ct-uncompressed")
    datasets = sorted(
        (pydicom.dcmread(p) for p in CT_HEAD.files()), key=lambda ds: float(ds.ImagePositionPatient[2])
    )
    middle = len(datasets) // 2
    paths = []
    for ds in datasets[middle - SLICES // 2 : middle + SLICES // 2]:
        ds.decompress()
        path = out / f"{ds.InstanceNumber:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


@pytest.fixture(scope="session")
def transcoded(
    tmp_path_factory: pytest.TempPathFactory, ct_subset: list[Path]
) -> Callable[[str], list[Path]]:
    """``transcoded("JPEGLSLossless")``: the subset re-encoded in that GDCM transfer syntax."""
    made: dict[str, list[Path]] = {}

    def make(syntax: str) -> list[Path]:
        if syntax not in made:
            out = tmp_path_factory.mktemp(syntax)
            made[syntax] = []
            for path in ct_subset:
                gdcm_transcode(path, out / path.name, syntax)
                made[syntax].append(out / path.name)
        return made[syntax]

    return make


@pytest.fixture(autouse=True)
def _empty_caches() -> None:
    """Each test decodes for itself (and may count decodes)."""
    cache.volumes.clear()
    cache.prepared.clear()
    cache.images.clear()


# --- a real Orthanc ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """Debian's Orthanc with the DICOMweb plugin, started for this test session (one per worker)."""
    binary, plugin = orthanc_binary(), dicomweb_plugin()
    require(binary is not None, "Orthanc is not installed: apt-get install orthanc orthanc-dicomweb")
    require(
        plugin is not None, "Orthanc's DICOMweb plugin is not installed: apt-get install orthanc-dicomweb"
    )
    try:
        with running_orthanc(tmp_path_factory.mktemp("orthanc")) as server:
            yield server
    except OrthancDidNotStart as exc:
        pytest.fail(str(exc))


# --- the store, on both backends ---------------------------------------------------------------


@pytest.fixture(params=["local", "orthanc"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> StudyStore:
    """A bare store (no app, no database) on each backend."""
    if request.param == "local":
        return LocalDiskStore(tmp_path / "studies")
    server: OrthancServer = request.getfixturevalue("orthanc")
    server.wipe()
    return OrthancStore(server.url, ORTHANC_USER, ORTHANC_PASSWORD, timeout=10)


@pytest.fixture
def app_config(app_config: dict[str, Any], tmp_path: Path) -> dict[str, Any]:
    """Studies on local disk in this test's own directory, unless ``backend`` says otherwise."""
    return {**app_config, "STUDY_STORAGE": "local", "STUDY_STORAGE_DIR": str(tmp_path / "studies")}


@pytest.fixture(params=["local", "orthanc"])
def backend(request: pytest.FixtureRequest, app: Flask) -> Backend:
    """The same test on local disk and on a real Orthanc."""
    if request.param == "local":
        return Backend("local", app)
    server: OrthancServer = request.getfixturevalue("orthanc")
    server.wipe()
    app.config.update(
        STUDY_STORAGE="orthanc",
        ORTHANC_URL=server.url,
        ORTHANC_USERNAME=ORTHANC_USER,
        ORTHANC_PASSWORD=ORTHANC_PASSWORD,
        ORTHANC_TIMEOUT=10,
    )
    return Backend("orthanc", app, server)


# --- customers ---------------------------------------------------------------------------------


@pytest.fixture
def make_customer(app: Flask) -> Callable[..., User]:
    """``make_customer("a@example.com", plan="patient", status=ACTIVE)``; status None: no subscription."""

    def make(
        email: str = "pat@example.com",
        plan: str = "patient",
        status: SubscriptionStatus | None = SubscriptionStatus.ACTIVE,
    ) -> User:
        user = create_user(email, PASSWORD, "Pat Lee")
        db.session.commit()
        if status is not None:
            subscribe_without_stripe(user, plan, status)
        return user

    return make


@pytest.fixture
def customer(make_customer: Callable[..., User], client: FlaskClient) -> User:
    """An active Patient-plan customer (5 GB), logged in on ``client``."""
    user = make_customer()
    login(client, user)
    return user


@pytest.fixture
def fixed_upload_salt(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Every upload rewrites UIDs with this salt, so a test can know the stored size in advance."""
    salt = b"fixed-salt-4test"
    monkeypatch.setattr("dicomportal.studies.ingest.secrets.token_bytes", lambda _n: salt)
    return salt
