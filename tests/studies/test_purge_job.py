"""The studies through billing's own lifecycle, with time travel and real charges (localstripe), on
local disk and on a real Orthanc: after the restore window billing's purge job deletes the files
and share links (through the studies purger) and records what it deleted; a restore by support
within the window finds everything intact, and no purge follows."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from flask import Flask
from flask.testing import FlaskClient

from dicomportal import jobs
from dicomportal.billing import cancellation, subscriptions
from dicomportal.extensions import db
from dicomportal.models import AuditLog, ShareLink, User
from tests.helpers.dicom_data import ct_series
from tests.helpers.stripe import GOOD_CARD, confirm_card_setup, price_id
from tests.helpers.studies import Backend, login
from tests.studies.test_upload import upload, visible_studies

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
ENDED = START + timedelta(days=5)
WINDOW = timedelta(days=30)


def _customer_with_a_shared_study(app: Flask, make_customer: Callable[..., User], client: FlaskClient) -> str:
    with time_machine.travel(START, tick=False):
        user = make_customer(status=None)
        subscriptions.subscribe(user.id, price_id("patient"), confirm_card_setup(app, user, GOOD_CARD))
        login(client, user)
        assert upload(client, ct_series(4, description="Spine CT")).status_code == 303  # type: ignore[attr-defined]
        [study] = visible_studies(user)
        client.post(f"/studies/{study.id}/shares", data={"days": "30"})
        page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    [link] = re.findall(r'value="http://localhost(/viewer/shared-[^"]+)"', page)
    with time_machine.travel(ENDED, tick=False):
        subscription = subscriptions.live_subscription(user.id)
        assert subscription is not None
        cancellation.end(subscription, "canceled")
        db.session.commit()
    return link


def test_the_purge_job_deletes_files_and_links_after_the_window_and_records_it(
    backend: Backend, app: Flask, make_customer: Callable[..., User], client: FlaskClient
) -> None:
    link = _customer_with_a_shared_study(app, make_customer, client)
    with time_machine.travel(ENDED + WINDOW - timedelta(hours=1), tick=False):
        jobs.run_once()
        assert backend.stored_files() != []  # not before the deadline
    with time_machine.travel(ENDED + WINDOW + timedelta(hours=1), tick=False):
        jobs.run_once()
        jobs.run_once()  # a second pass purges nothing more

    assert backend.stored_files() == []
    assert db.session.scalars(db.select(ShareLink)).all() == []
    assert app.test_client().get(link).status_code == 404
    [purged] = db.session.scalars(db.select(AuditLog).where(AuditLog.action == "customer_data.purged")).all()
    deleted = purged.details["deleted"]["studies"]
    assert (deleted["studies"], deleted["files"], deleted["share_links"]) == (1, 4, 1)
    assert deleted["bytes"] > 0


def test_a_restore_within_the_window_finds_studies_and_links_intact(
    backend: Backend, app: Flask, make_customer: Callable[..., User], client: FlaskClient
) -> None:
    link = _customer_with_a_shared_study(app, make_customer, client)
    files = backend.stored_files()
    with time_machine.travel(ENDED + timedelta(days=10), tick=False):
        assert client.get("/studies/").status_code == 403
        cancellation.restore("pat@example.com")
        assert [s.description for s in visible_studies(db.session.scalars(db.select(User)).one())] == [
            "Spine CT"
        ]
        assert app.test_client().get(link).status_code == 200
    with time_machine.travel(ENDED + WINDOW + timedelta(days=1), tick=False):
        jobs.run_once()

    assert backend.stored_files() == files
    assert (
        db.session.scalars(db.select(AuditLog).where(AuditLog.action == "customer_data.purged")).all() == []
    )
