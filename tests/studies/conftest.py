"""Study fixtures: a real Orthanc for the session, the store parametrized over local disk and
Orthanc, and subscribed customers made straight in the database (no Stripe needed to upload)."""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.accounts import create_user
from dicomportal.billing import clock
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
from dicomportal.stripe_server import free_port
from dicomportal.studies.orthanc import OrthancStore
from dicomportal.studies.store import LocalDiskStore, StudyStore, open_store
from tests.conftest import require

ORTHANC_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
DICOMWEB_PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",)
ORTHANC_USER, ORTHANC_PASSWORD = "portal", "orthanc-test-password"
PASSWORD = "correct horse battery"


# --- a real Orthanc ----------------------------------------------------------------------------


@dataclass
class OrthancServer:
    """An Orthanc child process on a free loopback port, with HTTP basic auth."""

    url: str
    process: subprocess.Popen[bytes]
    directory: Path

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = (ORTHANC_USER, ORTHANC_PASSWORD)
        return session

    def instances(self) -> list[str]:
        """Every instance Orthanc holds, whoever stored it."""
        response = self.session().get(f"{self.url}/instances", timeout=10)
        response.raise_for_status()
        return sorted(response.json())

    def wipe(self) -> None:
        session = self.session()
        for patient in session.get(f"{self.url}/patients", timeout=10).json():
            session.delete(f"{self.url}/patients/{patient}", timeout=10).raise_for_status()


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the test process dies, even by kill -9."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


def _orthanc_config(directory: Path, port: int, plugin: str) -> dict[str, Any]:
    return {
        "Name": "dicomportal-tests",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "index"),
        "StorageCompression": False,
        "HttpPort": port,
        "RemoteAccessAllowed": False,  # loopback clients only
        "AuthenticationEnabled": True,
        "RegisteredUsers": {ORTHANC_USER: ORTHANC_PASSWORD},
        "DicomServerEnabled": False,  # the portal talks REST only; no DICOM port is opened
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "SaveJobs": False,
        "HttpTimeout": 30,
    }


@pytest.fixture(scope="session")
def orthanc(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OrthancServer]:
    """Debian's Orthanc with the DICOMweb plugin, started for this test session (one per worker)."""
    binary = next((b for b in ORTHANC_BINARIES if Path(b).exists()), shutil.which("Orthanc"))
    require(binary is not None, "Orthanc is not installed: apt-get install orthanc orthanc-dicomweb")
    plugin = next((p for p in DICOMWEB_PLUGINS if Path(p).exists()), None)
    require(
        plugin is not None, "Orthanc's DICOMweb plugin is not installed: apt-get install orthanc-dicomweb"
    )
    assert binary and plugin
    directory = tmp_path_factory.mktemp("orthanc")
    port = free_port()
    config = directory / "orthanc.json"
    config.write_text(json.dumps(_orthanc_config(directory, port, plugin)))
    log = (directory / "orthanc.log").open("wb")
    process = subprocess.Popen(
        [binary, str(config)], stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
    )
    server = OrthancServer(f"http://127.0.0.1:{port}", process, directory)
    try:
        _wait_for(server, directory / "orthanc.log")
        yield server
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _wait_for(server: OrthancServer, log: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            pytest.fail(f"Orthanc exited with {server.process.returncode}:\n{log.read_text()[-2000:]}")
        try:
            if server.session().get(f"{server.url}/system", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    pytest.fail(f"Orthanc did not answer within {timeout:g} s:\n{log.read_text()[-2000:]}")


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
