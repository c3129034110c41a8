"""The extra-storage add-on, end to end with real charges (localstripe) and time travel: added
mid-period it is charged once, prorated, and the quota grows at once; renewals bill it on a line of
its own; a switch to annual billing restarts it with the plan; removed, it lasts to the period's
end and is not billed again; removing it is refused while the studies would not fit, with the
numbers."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from dateutil.relativedelta import relativedelta
from flask import Flask
from flask.testing import FlaskClient

from dicomportal import jobs
from dicomportal.billing import changes, subscriptions
from dicomportal.billing.invoicing import invoices_for
from dicomportal.billing.proration import prorate, unused_share
from dicomportal.billing.summary import next_charge
from dicomportal.extensions import db
from dicomportal.models import Interval, Invoice, InvoiceStatus, LineKind, Subscription, User
from dicomportal.studies.quota import storage_quota_bytes
from tests.helpers.stripe import GOOD_CARD, confirm_card_setup, intents_of, price_id
from tests.helpers.studies import fill_storage, login

GB = 1024**3
START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
PERIOD_END = START + relativedelta(months=1)
ADDED = START + timedelta(days=10)
ADD = "/studies/storage/extra-storage-100gb/add"
REMOVE = "/studies/storage/extra-storage-100gb/remove"


def _subscribed(app: Flask, make_customer: Callable[..., User], client: FlaskClient) -> User:
    with time_machine.travel(START, tick=False):
        user = make_customer(status=None)
        subscriptions.subscribe(user.id, price_id("patient"), confirm_card_setup(app, user, GOOD_CARD))
        login(client, user)
    return user


def _lines(invoice: Invoice) -> list[tuple[LineKind, int]]:
    return [(line.kind, line.amount_cents) for line in invoice.lines]


def _newest(user: User) -> Invoice:
    return max(invoices_for(user.id), key=lambda i: i.id)


def test_added_mid_period_it_is_charged_once_prorated_and_the_quota_grows_at_once(
    app: Flask, make_customer: Callable[..., User], client: FlaskClient
) -> None:
    user = _subscribed(app, make_customer, client)
    rest = int((PERIOD_END - ADDED).total_seconds())
    whole = int((PERIOD_END - START).total_seconds())
    expected = prorate(1000, rest, whole)
    with time_machine.travel(ADDED, tick=False):
        page = client.get("/studies/storage").get_data(as_text=True)
        assert f"Adding it now costs <strong>${expected / 100:.2f}</strong>" in page
        assert storage_quota_bytes(user.id) == 5 * GB

        first = client.post(ADD)
        again = client.post(ADD)  # a double click charges once

        assert first.status_code == 303 and again.status_code == 303
        addon_invoice = _newest(user)
        assert _lines(addon_invoice) == [(LineKind.ADDON, expected)]
        assert addon_invoice.status == InvoiceStatus.PAID
        assert len(intents_of(app, user)) == 2  # the subscription's first invoice and this one
        assert storage_quota_bytes(user.id) == 105 * GB
        assert "105 GB" in client.get("/studies/").get_data(as_text=True)

    with time_machine.travel(PERIOD_END + timedelta(hours=1), tick=False):
        jobs.run_once()
        assert _lines(_newest(user)) == [(LineKind.PLAN, 900), (LineKind.ADDON, 1000)]
        assert _newest(user).status == InvoiceStatus.PAID


def test_removed_it_lasts_to_the_period_end_and_is_not_billed_again(
    app: Flask, make_customer: Callable[..., User], client: FlaskClient
) -> None:
    user = _subscribed(app, make_customer, client)
    with time_machine.travel(ADDED, tick=False):
        client.post(ADD)
    with time_machine.travel(ADDED + timedelta(days=5), tick=False):
        removed = client.post(REMOVE)
        assert removed.status_code == 303
        page = client.get("/studies/storage").get_data(as_text=True)
        assert f"Removed: it ends on {PERIOD_END:%B} {PERIOD_END.day}, {PERIOD_END.year}" in page
        assert storage_quota_bytes(user.id) == 105 * GB  # until the period ends
    with time_machine.travel(PERIOD_END + timedelta(hours=1), tick=False):
        jobs.run_once()
        assert _lines(_newest(user)) == [(LineKind.PLAN, 900)]
        assert storage_quota_bytes(user.id) == 5 * GB


def test_removing_it_is_refused_while_the_studies_would_not_fit(
    app: Flask, make_customer: Callable[..., User], client: FlaskClient
) -> None:
    user = _subscribed(app, make_customer, client)
    with time_machine.travel(ADDED, tick=False):
        client.post(ADD)
        fill_storage(user, leave_bytes=99 * GB)  # 6 GB stored: more than the plan's 5 GB

        refused = client.post(REMOVE, headers={"HX-Request": "true"})

        assert refused.status_code == 422
        assert (
            "Your studies use 6.0 GB; without Extra storage, 100 GB your quota would be 5.0 GB. "
            "Delete 1.0 GB of studies first." in refused.get_data(as_text=True)
        )
        assert storage_quota_bytes(user.id) == 105 * GB
    with time_machine.travel(PERIOD_END + timedelta(hours=1), tick=False):
        jobs.run_once()
        assert _lines(_newest(user)) == [(LineKind.PLAN, 900), (LineKind.ADDON, 1000)]


def test_the_dashboard_shows_the_storage_panel(client: FlaskClient, customer: User) -> None:
    dashboard = client.get("/account/").get_data(as_text=True)
    panel = client.get("/studies/storage", headers={"HX-Request": "true"}).get_data(as_text=True)

    assert 'hx-get="/studies/storage"' in dashboard
    assert panel.startswith('<section id="storage-addons"') or 'id="storage-addons"' in panel[:200]
    assert "Extra storage, 100 GB" in panel


def test_switching_to_annual_restarts_the_add_on_with_the_plan_and_the_preview_says_so(
    app: Flask, make_customer: Callable[..., User], client: FlaskClient
) -> None:
    user = _subscribed(app, make_customer, client)
    with time_machine.travel(ADDED, tick=False):
        client.post(ADD)
    switch_day = ADDED + timedelta(days=5)
    with time_machine.travel(switch_day, tick=False):
        subscription = subscriptions.live_subscription(user.id)
        assert subscription is not None
        quote = changes.preview(user.id, subscription.id, price_id("patient", Interval.YEAR))
        unused = unused_share(1000, START, PERIOD_END, switch_day)
        # the plan's credit and charge, then the add-on's: unused monthly time back, a year charged
        assert [(line.kind, line.amount_cents) for line in quote.lines][2:] == [
            (LineKind.CREDIT, -unused),
            (LineKind.ADDON, 9600),
        ]
        assert quote.renewal.subtotal_cents == 5400 + 9600  # the next renewal: plan and add-on, yearly

        changes.change_plan(
            user.id, subscription.id, price_id("patient", Interval.YEAR), quote.charge.total_cents
        )

        invoice = _newest(user)
        assert [(line.kind, line.amount_cents) for line in invoice.lines] == [
            (line.kind, line.amount_cents) for line in quote.lines
        ]
        assert invoice.total_cents == quote.charge.total_cents and invoice.status == InvoiceStatus.PAID
        assert storage_quota_bytes(user.id) == 105 * GB
        renewed = db.session.get(Subscription, subscription.id)
        assert renewed is not None
        shown = next_charge(renewed, None)
        assert shown is not None and shown.subtotal_cents == 5400 + 9600
    with time_machine.travel(switch_day + relativedelta(years=1) + timedelta(hours=1), tick=False):
        jobs.run_once()
        assert _lines(_newest(user)) == [(LineKind.PLAN, 5400), (LineKind.ADDON, 9600)]
