"""Study fixtures: a real Orthanc for the session, the store parametrized over local disk and
Orthanc, and subscribed customers made straight in the database (no Stripe needed to upload)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
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
