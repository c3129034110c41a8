"""Study storage in the tests: a backend under test, customers subscribed without Stripe, a filled quota."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient

from dicomportal import clock
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
from dicomportal.studies.backends import open_store
from dicomportal.studies.store import StudyStore
from tests.helpers.orthanc import (
    OrthancServer,
)

PASSWORD = "correct horse battery"


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


def login(client: FlaskClient, user: User) -> None:
    response = client.post("/auth/login", data={"email": user.email, "password": PASSWORD})
    assert response.status_code in (302, 303), response.status_code


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
