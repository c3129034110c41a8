"""Managing a subscription through the pages, without JavaScript and with htmx: the pricing page
knows the subscriber (and never serves that to anyone else), the dialog's options as plain forms,
and another customer's subscription by id is a 404."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from flask import Flask
from flask.testing import FlaskClient

from dicomportal.billing import cancellation, pause
from dicomportal.extensions import db
from dicomportal.models import Subscription, User
from tests.helpers.auth import AuthActions
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import price_id

HX = {"HX-Request": "true"}


def test_the_pricing_page_marks_your_plan_and_offers_switch_without_poisoning_the_shared_page(
    app: Flask,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    anonymous = client.get("/plans/").get_data(as_text=True)
    user = make_customer()
    subscribe(user, "professional")
    auth.login(user.email)
    mine = client.get("/plans/").get_data(as_text=True)
    assert (
        mine.count("Your plan<") == 1
        and mine.count(">\n        Switch<") >= 2
        and "Subscribe<span" not in mine
    )
    again = app.test_client().get("/plans/").get_data(as_text=True)  # another, anonymous visitor
    assert "Your plan<" not in again and "Switch<" not in again and again == anonymous


def test_without_javascript_cancel_shows_active_until_and_undo_brings_it_back(
    smtp: SmtpSink,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    sub = subscribe(user, "professional")
    auth.login(user.email)
    page = client.get("/cancellation/").get_data(as_text=True)
    assert "Pause for 12 weeks" in page and "Switch to Patient" in page and "Cancel at period end" in page

    answer = client.post(f"/cancellation/{sub.id}/cancel", data={"reason": "not_using", "note": "busy"})
    assert answer.status_code == 303
    dashboard = client.get("/account/").get_data(as_text=True)
    assert "Active until" in dashboard and "Undo cancellation" in dashboard
    again = client.post(f"/cancellation/{sub.id}/cancel", data={}, follow_redirects=True)
    assert "already cancelled" in again.get_data(as_text=True)

    client.post(f"/cancellation/{sub.id}/undo")
    db.session.expire_all()
    assert not sub.cancel_at_period_end
    assert "Undo cancellation" not in client.get("/account/").get_data(as_text=True)
    assert [str(m["Subject"]) for m in smtp.to(user.email)][-2:] == [
        "Your DICOM Portal subscription is cancelled",
        "Your DICOM Portal subscription continues",
    ]


def test_an_htmx_option_answers_in_place_and_updates_the_dashboard_out_of_band(
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    sub = subscribe(user, "professional")
    auth.login(user.email)
    assert "<dialog" in client.get("/cancellation/", headers=HX).get_data(as_text=True)
    answer = client.post(f"/cancellation/{sub.id}/pause", headers=HX)
    body = answer.get_data(as_text=True)
    assert answer.status_code == 200 and "Your subscription pauses on" in body
    assert 'id="manage" class="account-panel manage" hx-swap-oob="true"' in body and "Resume now" in body
    refused = client.post(f"/cancellation/{sub.id}/pause", headers=HX)
    assert refused.status_code == 422 and "already paused" in refused.get_data(as_text=True)


@pytest.mark.parametrize(
    "path",
    ["cancel", "pause", "undo", "resume", "downgrade"],
)
def test_another_customers_subscription_by_id_is_404(
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    path: str,
) -> None:
    owner, intruder = make_customer(), make_customer()
    sub = subscribe(owner, "md")
    subscribe(intruder, "md")
    auth.login(intruder.email)
    data = {"price_id": price_id("patient")} if path == "downgrade" else {}
    assert client.post(f"/cancellation/{sub.id}/{path}", data=data).status_code == 404
    assert client.post(f"/plans/change/{sub.id}", data={"price_id": price_id("patient")}).status_code == 404
    db.session.expire_all()
    assert not sub.cancel_at_period_end and sub.pause_starts_at is None and sub.scheduled_price_id is None


def test_the_change_page_previews_then_confirm_upgrades(
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    sub = subscribe(user, "patient")
    auth.login(user.email)
    page = client.get("/plans/change").get_data(as_text=True)
    assert "1 TB storage, 2000 credits a month" in page and "1000 GB" not in page  # Surgical, as sold
    target = price_id("professional")
    preview = client.get(f"/plans/change?price={target}", headers=HX).get_data(as_text=True)
    assert "Charged now: $20" in preview and 'id="preview"' in preview and "<html" not in preview
    assert "50 GB cloud storage (now 5 GB)" in preview
    answer = client.post(f"/plans/change/{sub.id}", data={"price_id": target, "seen_total": 2000})
    assert answer.status_code == 303
    db.session.expire_all()
    assert sub.price.plan.code == "professional"
    same = client.post(f"/plans/change/{sub.id}", data={"price_id": target}, follow_redirects=True)
    assert "already on the Professional plan" in same.get_data(as_text=True)


@pytest.mark.parametrize("state", ["cancelling", "pausing"])
def test_the_pricing_page_tells_a_cancelling_or_pausing_subscriber_what_applies(
    state: str,
    client: FlaskClient,
    auth: AuthActions,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    user = make_customer()
    sub = subscribe(user, "professional")
    if state == "cancelling":
        cancellation.cancel_subscription(user.id, sub.id, None, None)
    else:
        pause.pause_subscription(user.id, sub.id)
    auth.login(user.email)
    page = client.get("/plans/").get_data(as_text=True)
    # no Switch into a plan change that would be refused: the dashboard is where to act
    assert "Switch<" not in page and "Subscribe<span" not in page
    assert page.count(">Manage your plan</a>") >= 3
    if state == "cancelling":
        assert f"Your plan (ends {sub.current_period_end:%B} {sub.current_period_end.day}" in page
