"""The viewer over HTTP: the public demo with every tool, customers with their plan's tools (the
endpoints refuse the others), cacheable images, and measurements kept per user."""

from __future__ import annotations

import io
import re
from collections.abc import Callable

import numpy as np
import pytest
import trimesh
from flask import Flask
from flask.testing import FlaskClient
from PIL import Image
from sqlalchemy import select

from dicomportal import clock
from dicomportal.accounts import create_user
from dicomportal.billing.periods import period_boundary
from dicomportal.extensions import db
from dicomportal.models import Annotation, Interval, Plan, Price, Subscription, SubscriptionStatus, User
from dicomportal.studies import cache
from tests.helpers.auth import AuthActions

PASSWORD = "correct horse battery"


def series_uid(client: FlaskClient, page: str) -> str:
    html = client.get(page).get_data(as_text=True)
    found = re.search(r"/viewer/[\w-]+/([0-9.]+)/", html)
    assert found, "no image URL on the page"
    return found.group(1)


@pytest.fixture
def customer(app: Flask, client: FlaskClient) -> Callable[..., User]:
    """A logged-in customer with a live subscription to ``plan`` (rows only: no payment needed)."""

    def make(
        plan: str, status: SubscriptionStatus = SubscriptionStatus.ACTIVE, email: str | None = None
    ) -> User:
        user = create_user(email or f"{plan}@example.com", PASSWORD, "Casey Customer")
        price = db.session.scalar(
            select(Price).join(Plan).where(Plan.code == plan, Price.interval == Interval.MONTH, Price.active)
        )
        assert price is not None
        now = clock.now()
        db.session.add(
            Subscription(
                user_id=user.id,
                price_id=price.id,
                status=status,
                current_period_start=now,
                current_period_end=period_boundary(now, Interval.MONTH, 1),
                billing_anchor=now,
            )
        )
        db.session.commit()
        AuthActions(client).login(user.email, PASSWORD)
        return user

    return make


# --- the public demo ---------------------------------------------------------------------------


def test_demo_opens_without_an_account_with_every_tool_labelled_by_plan(client: FlaskClient) -> None:
    response = client.get("/demo")
    assert response.status_code == 302 and response.location.endswith("/viewer/demo")

    page = client.get("/viewer/demo").get_data(as_text=True)

    assert "Not for diagnostic use" in page
    for label in ("Patient", "Professional", "MD", "Surgical"):
        assert 'class="tool-plan" id="plan-' in page and f">{label}</span>" in page
    assert "disabled" not in page  # nothing locked on the demo
    assert 'href="/plans/" role="button">Compare plans and prices' in page


def test_slices_are_cacheable_pngs_and_the_series_is_decoded_once(client: FlaskClient) -> None:
    uid = series_uid(client, "/viewer/demo")
    url = f"/viewer/demo/{uid}/axial/40.png?c=40&w=400"

    first = client.get(url)
    again = client.get(url, headers={"If-None-Match": first.headers["ETag"]})
    for index in range(0, 108, 9):
        assert client.get(f"/viewer/demo/{uid}/axial/{index}.png?c=-600&w=1500").status_code == 200

    assert first.status_code == 200 and first.mimetype == "image/png"
    assert Image.open(io.BytesIO(first.data)).size == (256, 256)
    assert "max-age=31536000" in first.headers["Cache-Control"] and "public" in first.headers["Cache-Control"]
    assert again.status_code == 304 and again.data == b""
    assert cache.volumes.made == 1


def test_the_demo_exports_an_animated_rotation_and_previews_a_segmentation(client: FlaskClient) -> None:
    uid = series_uid(client, "/viewer/demo")

    rotation = client.get(f"/viewer/demo/{uid}/rotation/mip.png")
    preview = client.get(f"/viewer/demo/{uid}/segmentation/axial/54.png?lo=226&hi=3071&c=40&w=400")

    animation = Image.open(io.BytesIO(rotation.data))
    assert rotation.status_code == 200 and "attachment" in rotation.headers["Content-Disposition"]
    assert animation.format == "PNG" and getattr(animation, "is_animated", False) and animation.n_frames == 36
    tinted = np.asarray(Image.open(io.BytesIO(preview.data)).convert("RGB")).astype(int)
    reds = int(((tinted[..., 0] - tinted[..., 1] > 60) & (tinted[..., 0] - tinted[..., 2] > 60)).sum())
    assert preview.status_code == 200 and reds > 500  # the skull, tinted


def test_costly_downloads_are_limited_per_client(client: FlaskClient) -> None:
    uid = series_uid(client, "/viewer/demo")
    statuses = [client.get(f"/viewer/demo/{uid}/surface.stl?lo=5000&hi=6000").status_code for _ in range(31)]

    assert statuses[:30] == [400] * 30 and statuses[30] == 429


def test_a_bad_window_or_slice_is_a_clear_400_and_an_unknown_study_a_404(client: FlaskClient) -> None:
    uid = series_uid(client, "/viewer/demo")

    assert client.get(f"/viewer/demo/{uid}/axial/3.png?c=40&w=0").status_code == 400
    out_of_range = client.get(f"/viewer/demo/{uid}/axial/500.png")
    assert out_of_range.status_code == 400 and "this view has 108" in out_of_range.get_data(as_text=True)
    assert client.get(f"/viewer/demo/{uid}/oblique/3.png").status_code == 400
    assert client.get("/viewer/no-such-study").status_code == 404
    assert client.get("/viewer/demo/1.2.3/axial/3.png").status_code == 404


def test_anonymous_demo_measurements_live_in_the_session(client: FlaskClient) -> None:
    uid = series_uid(client, "/viewer/demo")
    notes = f"/viewer/demo/{uid}/notes"

    saved = client.post(
        notes, data={"kind": "distance", "plane": "axial", "slice": "54", "points": "10,20 110,20"}
    )
    angle = client.post(
        notes, data={"kind": "angle", "plane": "axial", "slice": "54", "points": "0,0 10,0 10,10"}
    )
    bad = client.post(notes, data={"kind": "distance", "plane": "axial", "slice": "54", "points": "10,20"})

    assert saved.status_code == 200 and "Distance 95.7 mm, axial slice 55" in saved.get_data(as_text=True)
    assert "Angle 90.0°" in angle.get_data(as_text=True)
    assert bad.status_code == 422 and "needs 2 point(s)" in bad.get_data(as_text=True)
    assert db.session.scalar(select(Annotation)) is None
    listed = client.get(notes, headers={"HX-Request": "true"}).get_data(as_text=True)
    assert listed.count("data-note-id") == 2


# --- customers: the plan decides -----------------------------------------------------------------


def test_patient_plan_sees_mpr_and_stl_labelled_with_their_plans_and_cannot_call_them(
    client: FlaskClient, customer: Callable[..., User]
) -> None:
    customer("patient")
    page = client.get("/viewer/sample").get_data(as_text=True)
    uid = series_uid(client, "/viewer/sample")

    assert 'id="plan-mpr-coronal">MD</span>' in page and 'id="plan-segment">Surgical</span>' in page
    assert 'id="plan-measure">Professional</span>' in page
    assert "In the MD plan: compare plans" in page and 'href="/plans/"' in page
    assert client.get(f"/viewer/sample/{uid}/axial/50.png").status_code == 200  # slices: Patient
    assert client.get(f"/viewer/sample/{uid}/3d/mip/0.png").status_code == 200  # 3D: Patient
    coronal = client.get(f"/viewer/sample/{uid}/coronal/100.png")
    assert coronal.status_code == 403
    assert "included in the MD plan and above. Your Patient plan" in coronal.get_data(as_text=True)
    stl = client.get(f"/viewer/sample/{uid}/surface.stl?lo=226&hi=3071")
    assert stl.status_code == 403 and "included in the Surgical plan" in stl.get_data(as_text=True)
    for refused in (
        client.get(f"/viewer/sample/{uid}/segmentation/axial/50.png?lo=226&hi=3071"),
        client.get(f"/viewer/sample/{uid}/export/axial/50.png"),
        client.get(f"/viewer/sample/{uid}/rotation/mip.png"),
        client.get("/viewer/sample/compare?with=sample-mr"),
        client.post(f"/viewer/sample/{uid}/notes", data={"kind": "text", "plane": "axial", "slice": "1"}),
    ):
        assert refused.status_code == 403
    assert client.get("/viewer/sample?plane=coronal").status_code == 200  # the page falls back to axial


def test_surgical_plan_gets_mpr_stl_and_measurements_kept_for_that_user(
    app: Flask, client: FlaskClient, customer: Callable[..., User]
) -> None:
    surgeon = customer("surgical")
    uid = series_uid(client, "/viewer/sample")

    coronal = client.get(f"/viewer/sample/{uid}/coronal/128.png?c=40&w=400")
    stl = client.get(f"/viewer/sample/{uid}/surface.stl?lo=226&hi=3071")
    note = client.post(
        f"/viewer/sample/{uid}/notes",
        data={"kind": "text", "plane": "coronal", "slice": "128", "points": "5,5", "text": "left orbit"},
    )
    export = client.get(f"/viewer/sample/{uid}/export/coronal/128.png?c=40&w=400")

    assert coronal.status_code == 200 and Image.open(io.BytesIO(coronal.data)).size == (256, 169)
    assert "private" in coronal.headers["Cache-Control"]
    assert stl.status_code == 200 and stl.mimetype == "model/stl"
    assert "attachment" in stl.headers["Content-Disposition"]
    assert trimesh.load(io.BytesIO(stl.data), file_type="stl").is_watertight
    assert note.status_code == 200 and "left orbit" in note.get_data(as_text=True)
    assert export.status_code == 200 and Image.open(io.BytesIO(export.data)).size == (512, 338 + 52)
    (row,) = db.session.scalars(select(Annotation)).all()
    assert row.user_id == surgeon.id and row.study_key == "sample"
    assert client.get("/viewer/sample/compare?with=sample-mr").status_code == 200

    # Another customer sees none of it and cannot delete it.
    AuthActions(client).logout()
    customer("surgical", email="other-surgeon@example.com")
    assert "left orbit" not in client.get(f"/viewer/sample/{uid}/notes").get_data(as_text=True)
    assert client.post(f"/viewer/sample/{uid}/notes/{row.id}/delete").status_code == 404
    assert db.session.get(Annotation, row.id) is not None


def test_customer_studies_need_a_login_and_a_live_subscription(
    client: FlaskClient, customer: Callable[..., User]
) -> None:
    logged_out = client.get("/viewer/sample")
    assert logged_out.status_code == 302 and "/auth/login" in logged_out.location

    customer("md", status=SubscriptionStatus.INCOMPLETE)
    refused = client.get("/viewer/sample")

    assert refused.status_code == 403 and "needs a subscription" in refused.get_data(as_text=True)


def test_a_paused_subscription_still_views_with_its_plans_tools(
    client: FlaskClient, customer: Callable[..., User]
) -> None:
    customer("md", status=SubscriptionStatus.PAUSED)
    uid = series_uid(client, "/viewer/sample")

    assert client.get(f"/viewer/sample/{uid}/sagittal/128.png").status_code == 200
    assert client.get(f"/viewer/sample/{uid}/surface.stl?lo=226&hi=3071").status_code == 403
