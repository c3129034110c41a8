"""Stored studies in the viewer and share links: the owner opens their study, shares it read-only
with an expiry, the recipient opens it without an account (every opening counted), and the link
stops at revocation, expiry, deletion of the study and the end of the subscription. Another
account's study, series, image or link by id is a 404."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta

import pytest
import time_machine
from flask import Flask
from flask.testing import FlaskClient

from dicomportal import clock
from dicomportal.extensions import db
from dicomportal.models import ShareLink, Study, SubscriptionStatus, User
from tests.helpers.dicom_data import ct_series
from tests.helpers.studies import Backend, login
from tests.studies.test_upload import upload, visible_studies


def _stored(client: FlaskClient, user: User, slices: int = 4, description: str = "Head CT") -> Study:
    assert upload(client, ct_series(slices, description=description)).status_code == 303  # type: ignore[attr-defined]
    [study] = [s for s in visible_studies(user) if s.description == description]
    return study


def _share(client: FlaskClient, study: Study, days: int = 7) -> str:
    response = client.post(f"/studies/{study.id}/shares", data={"days": str(days)})
    assert response.status_code == 303, response.status_code
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    links = re.findall(r'value="http://localhost(/viewer/shared-[^"]+)"', page)
    assert links, "the study page lists the new link"
    return links[0]


def test_owner_opens_a_stored_study_in_the_viewer_with_its_images(
    backend: Backend, client: FlaskClient, customer: User
) -> None:
    study = _stored(client, customer)

    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    viewer = client.get(f"/viewer/s{study.id}")
    html = viewer.get_data(as_text=True)
    image = re.search(r'src="(/viewer/s\d+/[^"]+/axial/\d+\.png[^"]*)"', html)

    assert f'href="/viewer/s{study.id}"' in page
    assert viewer.status_code == 200 and "Head CT" in html
    assert image is not None
    png = client.get(image.group(1).replace("&amp;", "&"))
    assert png.status_code == 200 and png.data.startswith(b"\x89PNG")


def test_a_share_link_opens_without_an_account_counts_openings_and_stops_when_revoked(
    backend: Backend, app: Flask, client: FlaskClient, customer: User
) -> None:
    study = _stored(client, customer)
    link = _share(client, study, days=3)
    stranger = app.test_client()

    first = stranger.get(link)
    second = stranger.get(link)
    share = db.session.scalars(db.select(ShareLink)).one()
    db.session.refresh(share)

    assert first.status_code == 200 and second.status_code == 200
    assert "Head CT" in first.get_data(as_text=True)
    assert share.open_count == 2
    assert share.expires_at - share.created_at == timedelta(days=3)
    assert ">2</td>" in client.get(f"/studies/{study.id}").get_data(as_text=True)  # openings listed

    revoked = client.post(f"/studies/{study.id}/shares/{share.id}/revoke")
    assert revoked.status_code == 303
    refused = stranger.get(link)
    assert refused.status_code == 404
    assert "This link does not open: it has expired or was revoked." in refused.get_data(as_text=True)
    assert "Revoked" in client.get(f"/studies/{study.id}").get_data(as_text=True)


def test_a_share_link_is_read_only(client: FlaskClient, app: Flask, customer: User) -> None:
    study = _stored(client, customer)
    link = _share(client, study)
    stranger = app.test_client()
    series_uid = study.series[0].series_instance_uid

    notes = stranger.get(f"{link}/{series_uid}/notes")
    stl = stranger.post(f"{link}/{series_uid}/surface.stl", data={"lo": "0", "hi": "100"})
    build = stranger.post(f"{link}/{series_uid}/build-3d")

    assert notes.status_code == 403 and stl.status_code == 403
    assert build.status_code in (402, 403, 404)


def test_share_expiry_is_bounded_and_expired_links_do_not_open(
    client: FlaskClient, app: Flask, customer: User
) -> None:
    study = _stored(client, customer)
    too_long = client.post(f"/studies/{study.id}/shares", data={"days": "31"}, headers={"HX-Request": "true"})
    assert too_long.status_code == 422
    assert "A link can last from 1 to 30 days; you asked for 31." in too_long.get_data(as_text=True)
    not_a_number = client.post(f"/studies/{study.id}/shares", data={"days": "a week"})
    assert not_a_number.status_code == 303
    page = client.get(f"/studies/{study.id}").get_data(as_text=True)
    assert "Enter how many days the link should work, from 1 to 30." in page
    assert db.session.scalars(db.select(ShareLink)).all() == []

    link = _share(client, study, days=1)
    with time_machine.travel(clock.now() + timedelta(days=1, minutes=1), tick=False):
        assert app.test_client().get(link).status_code == 404


def test_links_stop_when_the_study_is_deleted_or_the_subscription_ends(
    client: FlaskClient, app: Flask, customer: User
) -> None:
    kept, deleted = (
        _stored(client, customer, description="Kept"),
        _stored(client, customer, description="Gone"),
    )
    kept_link, deleted_link = _share(client, kept), _share(client, deleted)

    client.post(f"/studies/{deleted.id}/delete")
    assert app.test_client().get(deleted_link).status_code == 404
    assert app.test_client().get(kept_link).status_code == 200

    subscription = customer_subscription(customer)
    subscription.status = SubscriptionStatus.ENDED
    subscription.ended_at = clock.now()
    db.session.commit()
    assert app.test_client().get(kept_link).status_code == 404
    assert client.get(f"/viewer/s{kept.id}").status_code == 403


def customer_subscription(user: User):  # type: ignore[no-untyped-def]
    from dicomportal.billing.subscriptions import live_subscription

    subscription = live_subscription(user.id)
    assert subscription is not None
    return subscription


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("GET", "/viewer/s{id}"),
        ("GET", "/viewer/s{id}/{series}/axial/0.png"),
        ("POST", "/viewer/s{id}/{series}/build-3d"),
        ("POST", "/studies/{id}/shares"),
        ("POST", "/studies/{id}/shares/{share}/revoke"),
    ],
)
def test_another_accounts_study_series_image_and_links_are_not_found(
    method: str,
    path: str,
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
) -> None:
    owner = make_customer("owner@example.com")
    owner_client = app.test_client()
    login(owner_client, owner)
    study = _stored(owner_client, owner)
    _share(owner_client, study)
    share = db.session.scalars(db.select(ShareLink)).one()
    intruder = make_customer("intruder@example.com")
    login(client, intruder)

    url = path.format(id=study.id, series=study.series[0].series_instance_uid, share=share.id)
    response = client.open(url, method=method, data={"days": "5"})

    assert response.status_code == 404
    db.session.refresh(share)
    assert share.revoked_at is None
    assert db.session.scalars(db.select(ShareLink)).all() == [share]


def test_a_recipient_sees_the_3d_view_only_once_the_owner_has_built_it(
    client: FlaskClient, app: Flask, customer: User
) -> None:
    study = _stored(client, customer, slices=6)
    link = _share(client, study)
    uid = study.series[0].series_instance_uid
    stranger = app.test_client()

    before = stranger.get(f"{link}?plane=3d").get_data(as_text=True)
    frame_before = stranger.get(f"{link}/{uid}/3d/mip/0.png")
    assert client.post(f"/viewer/s{study.id}/{uid}/build-3d").status_code == 303
    after = stranger.get(f"{link}?plane=3d").get_data(as_text=True)
    frame_after = stranger.get(f"{link}/{uid}/3d/mip/0.png")

    assert "The owner of this study has not built its 3D view." in before
    assert frame_before.status_code == 400
    assert "has not built its 3D view" not in after
    assert frame_after.status_code == 200 and frame_after.data.startswith(b"\x89PNG")
