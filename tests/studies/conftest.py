"""Fixtures for the DICOM tests.

Viewer: the shipped demo series and series made from it in other transfer syntaxes (GDCM
transcodes; the viewer decodes with its own plugins), in tmp dirs. Storage: a real Orthanc for the
session, the store parametrized over local disk and Orthanc, and subscribed customers made
straight in the database (no Stripe needed to upload).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pydicom
import pytest
from flask import Flask
from flask.testing import FlaskClient
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomportal import clock
from dicomportal.accounts import create_user
from dicomportal.extensions import db
from dicomportal.models import (
    Instance,
    Interval,
    Plan,
    Price,
    Series,
    Study,
    StudyStatus,
    Subscription,
    SubscriptionStatus,
    User,
)
from dicomportal.studies import cache
from dicomportal.studies.demo import CT_HEAD
from dicomportal.studies.orthanc import OrthancStore
from dicomportal.studies.store import LocalDiskStore, StudyStore, open_store
from tests.conftest import require
from tests.studies.orthanc_server import (
    ORTHANC_PASSWORD,
    ORTHANC_USER,
    OrthancDidNotStart,
    OrthancServer,
    dicomweb_plugin,
    orthanc_binary,
    running_orthanc,
)

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


def gdcm_transcode(source: Path, target: Path, syntax: str) -> None:
    """Re-encode one file with GDCM (an encoder independent of the viewer's decoders)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read(), source
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change(), syntax
    writer = gdcm.ImageWriter()
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    writer.SetFileName(str(target))
    assert writer.Write(), target


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


def new_dataset(modality: str, sop_class: str, **elements: object) -> Dataset:
    """A minimal image dataset with file meta (Explicit VR Little Endian) and ``elements``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Synthetic"
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def set_pixels(ds: Dataset, pixels: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    """Unsigned 16-bit grey (or 8-bit RGB) pixel data for ``pixels`` (frames, rows, cols[, 3])."""
    color = pixels.ndim == 4 or (pixels.ndim == 3 and pixels.shape[-1] == 3 and photometric == "RGB")
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric
    if color:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if color else pixels.shape[-2:]
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    frames = pixels.shape[0] if pixels.ndim == (4 if color else 3) else 1
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.ascontiguousarray(pixels, dtype=f"<u{bits // 8}").tobytes()


PASSWORD = "correct horse battery"


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


@dataclass
class Backend:
    """The app's configured study store, and a way to see everything it holds."""

    name: str
    app: Flask
    orthanc: OrthancServer | None = None

    @property
    def store(self) -> StudyStore:
        return open_store(self.app.config)

    def stored_files(self) -> list[str]:
        """Every file in the store, of every customer (on disk: temporary files too)."""
        if self.orthanc is not None:
            return self.orthanc.instances()
        root = Path(self.app.config["STUDY_STORAGE_DIR"])
        return (
            sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()) if root.exists() else []
        )


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


def subscribe_without_stripe(user: User, plan_code: str, status: SubscriptionStatus) -> Subscription:
    """The subscription row a successful subscribe leaves (studies need no payment to be tested)."""
    price = db.session.scalar(
        db.select(Price)
        .join(Plan)
        .where(Plan.code == plan_code, Price.interval == Interval.MONTH, Price.active)
    )
    assert price is not None
    now = clock.now()
    subscription = Subscription(
        user_id=user.id,
        price_id=price.id,
        status=status,
        current_period_start=now,
        current_period_end=now + timedelta(days=30),
        billing_anchor=now,
        ended_at=now if status == SubscriptionStatus.ENDED else None,
    )
    db.session.add(subscription)
    db.session.commit()
    return subscription


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


def login(client: FlaskClient, user: User) -> None:
    response = client.post("/auth/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code in (302, 303), response.status_code


@pytest.fixture
def customer(make_customer: Callable[..., User], client: FlaskClient) -> User:
    """An active Patient-plan customer (5 GB), logged in on ``client``."""
    user = make_customer()
    login(client, user)
    return user


def fill_storage(user: User, leave_bytes: int) -> Study:
    """Record a stored study that leaves ``leave_bytes`` of the customer's quota free."""
    from dicomportal.studies.quota import storage_quota_bytes, storage_used_bytes

    size = storage_quota_bytes(user.id) - storage_used_bytes(user.id) - leave_bytes
    study = Study(
        user_id=user.id,
        status=StudyStatus.READY,
        storage_backend="local",
        study_instance_uid=f"2.25.{user.id}{size}",
        description="Earlier study",
        size_bytes=size,
    )
    db.session.add(study)
    db.session.commit()
    return study


def patient_data_in_tables(needles: list[str]) -> list[str]:
    """Every value in the studies tables that contains one of ``needles`` (it must be none)."""
    found = []
    for model in (Study, Series, Instance):
        for row in db.session.execute(db.select(model.__table__)).all():
            found += [str(v) for v in row if any(n.lower() in str(v).lower() for n in needles)]
    return found


@pytest.fixture
def fixed_upload_salt(monkeypatch: pytest.MonkeyPatch) -> bytes:
    """Every upload rewrites UIDs with this salt, so a test can know the stored size in advance."""
    salt = b"fixed-salt-4test"
    monkeypatch.setattr("dicomportal.studies.ingest.secrets.token_bytes", lambda _n: salt)
    return salt
