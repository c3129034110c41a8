"""The studies' data lifecycle on local disk and on a real Orthanc: an ended subscription closes the
studies and their share links; a restore within the window finds everything intact; the studies
purger (registered with billing's purge hook) deletes the files and the share links, says what it
deleted, and is safe to run again."""

from __future__ import annotations

import re

from flask import Flask
from flask.testing import FlaskClient

from dicomportal.billing import cancellation, retention
from dicomportal.billing.subscriptions import live_subscription
from dicomportal.extensions import db
from dicomportal.models import Annotation, AnnotationKind, ShareLink, Subscription, SubscriptionStatus, User
from tests.helpers.dicom_data import ct_series
from tests.helpers.studies import Backend
from tests.studies.test_upload import upload, visible_studies


def _study_with_link(client: FlaskClient, user: User) -> tuple[int, str]:
    upload(client, ct_series(4, description="Knee MRI"))
    [study] = visible_studies(user)
    client.post(f"/studies/{study.id}/shares", data={"days": "7"})
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    [link] = re.findall(r'value="http://localhost(/viewer/shared-[^"]+)"', page)
    return study.id, link


def _end(user: User) -> Subscription:
    subscription = live_subscription(user.id)
    assert subscription is not None
    cancellation.end(subscription, "canceled")
    db.session.commit()
    return subscription


def test_ended_closes_the_studies_and_a_restore_in_the_window_finds_everything_intact(
    backend: Backend, app: Flask, client: FlaskClient, customer: User
) -> None:
    study_id, link = _study_with_link(client, customer)
    files = backend.stored_files()

    subscription = _end(customer)
    assert client.get("/studies/").status_code == 403
    assert client.get(f"/viewer/s{study_id}").status_code == 403
    assert client.get("/studies/export.zip").status_code == 403
    assert app.test_client().get(link).status_code == 404

    subscription.status = SubscriptionStatus.ACTIVE  # support restores it before the deadline
    subscription.ended_at = None
    db.session.commit()
    assert backend.stored_files() == files
    assert client.get(f"/viewer/s{study_id}").status_code == 200
    assert app.test_client().get(link).status_code == 200


def test_the_purge_after_the_window_deletes_files_and_links_and_is_idempotent(
    backend: Backend, app: Flask, client: FlaskClient, customer: User
) -> None:
    study_id, link = _study_with_link(client, customer)
    size = visible_studies(customer)[0].size_bytes
    db.session.add(  # a measurement the customer kept in the viewer
        Annotation(
            user_id=customer.id,
            study_key=f"s{study_id}",
            series_uid="2.25.1",
            plane="axial",
            slice_index=0,
            kind=AnnotationKind.TEXT,
            points=[[10, 10]],
            text="check this",
        )
    )
    db.session.commit()
    _end(customer)

    first = retention.purge_customer_data(customer.id)
    again = retention.purge_customer_data(customer.id)

    assert first["studies"] == {"studies": 1, "files": 4, "bytes": size, "share_links": 1, "viewer_notes": 1}
    assert again["studies"] == {"studies": 0, "files": 0, "bytes": 0, "share_links": 0, "viewer_notes": 0}
    assert backend.stored_files() == []
    assert db.session.scalars(db.select(ShareLink)).all() == []
    assert db.session.scalars(db.select(Annotation)).all() == []
    assert app.test_client().get(link).status_code == 404


def test_paused_keeps_studies_viewable_and_blocks_uploads(client: FlaskClient, customer: User) -> None:
    study_id, _link = _study_with_link(client, customer)
    subscription = live_subscription(customer.id)
    assert subscription is not None
    subscription.status = SubscriptionStatus.PAUSED
    db.session.commit()

    assert client.get(f"/viewer/s{study_id}").status_code == 200
    refused = upload(client, ct_series(2, description="New"))
    assert refused.status_code == 422  # type: ignore[attr-defined]
    assert [s.description for s in visible_studies(customer)] == ["Knee MRI"]
