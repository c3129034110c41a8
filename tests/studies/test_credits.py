"""Processing credits and overage with consent, end to end with time travel and real charges
(localstripe): the plan's credits are spent on 3D views, the customer is told when they are used up
(banner and email with the catalog price), nothing extra is used until they allow it, never beyond
their cap, and the extra credits used appear on the next renewal invoice as quantity x price."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from dateutil.relativedelta import relativedelta
from flask import Flask
from flask.testing import FlaskClient

from dicomportal import jobs
from dicomportal.billing import subscriptions
from dicomportal.billing.invoicing import invoices_for
from dicomportal.extensions import db
from dicomportal.mail import deliver_pending
from dicomportal.models import CreditEntry, CreditKind, LineKind, Study, SubscriptionStatus, User
from dicomportal.studies import credits
from tests.helpers.dicom_data import ct_series
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import GOOD_CARD, confirm_card_setup, price_id
from tests.helpers.studies import fill_storage, login
from tests.studies.test_upload import upload, visible_studies

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
DURING = START + timedelta(days=3)
RENEWAL = START + relativedelta(months=1) + timedelta(hours=1)


def _subscribed(app: Flask, make_customer: Callable[..., User], client: FlaskClient) -> User:
    with time_machine.travel(START, tick=False):
        user = make_customer(status=None)
        subscriptions.subscribe(user.id, price_id("patient"), confirm_card_setup(app, user, GOOD_CARD))
        login(client, user)
    return user


def _studies(client: FlaskClient, user: User, count: int) -> list[Study]:
    for n in range(count):
        assert upload(client, ct_series(6, description=f"Study {n}")).status_code == 303  # type: ignore[attr-defined]
    return sorted(visible_studies(user), key=lambda s: s.description)


def _build_3d(client: FlaskClient, study: Study) -> int:
    uid = study.series[0].series_instance_uid
    return int(client.post(f"/viewer/s{study.id}/{uid}/build-3d").status_code)


def _use_included(user: User, study: Study, count: int) -> None:
    for n in range(count):
        credits.spend_credit(user.id, credits.BUILD_3D, study.id, f"2.25.{n}")


def _row(user: User) -> Study:
    """A stored study's row (no files: spending a credit needs only the study's id)."""
    return fill_storage(user, leave_bytes=4 * 1024**3)


def _used_up_emails(smtp: SmtpSink, user: User) -> list[object]:
    return [m for m in smtp.to(user.email) if m["Subject"] == "You have used your processing credits"]


def _ledger(user: User, kind: CreditKind) -> int:
    entries = db.session.scalars(
        db.select(CreditEntry).where(CreditEntry.user_id == user.id, CreditEntry.kind == kind)
    )
    return sum(e.quantity for e in entries)


def test_overage_needs_consent_stays_under_the_cap_and_is_invoiced_at_renewal(
    app: Flask, make_customer: Callable[..., User], client: FlaskClient, smtp: SmtpSink
) -> None:
    user = _subscribed(app, make_customer, client)
    with time_machine.travel(DURING, tick=False):
        a, b, c, d, e = _studies(client, user, 5)
        page = client.get(f"/viewer/s{b.id}?plane=3d").get_data(as_text=True)
        assert "Building the 3D view of this series uses <strong>1 processing credit</strong>" in page
        assert "You have 10 of 10 credits left this period." in page

        _use_included(user, a, 9)
        assert _build_3d(client, b) == 303  # the tenth and last included credit
        deliver_pending()
        [email] = _used_up_emails(smtp, user)
        assert "Extra credits cost $0.50 each." in SmtpSink.text(email)
        studies_page = client.get("/studies/").get_data(as_text=True)
        assert "You have used all 10 processing credits of this period." in studies_page
        assert "Extra credits cost $0.50 each." in studies_page

        refused = client.post(f"/viewer/s{c.id}/{c.series[0].series_instance_uid}/build-3d")
        assert refused.status_code == 402
        assert "Extra credits cost $0.50 each" in refused.get_data(as_text=True)
        assert _ledger(user, CreditKind.EXTRA) == 0  # nothing beyond the allowance without consent

        assert client.post("/studies/credits/cap", data={"cap": "1.00"}).status_code == 303
        assert _build_3d(client, c) == 303
        assert _build_3d(client, d) == 303
        assert _build_3d(client, e) == 402  # a third extra credit would pass the $1.00 cap
        assert _build_3d(client, c) == 303  # a built view stays built: nothing more is spent
        assert _ledger(user, CreditKind.EXTRA) == 2
        deliver_pending()
        assert len(_used_up_emails(smtp, user)) == 1  # told once per period

    with time_machine.travel(RENEWAL, tick=False):
        jobs.run_once()
        renewal = max(invoices_for(user.id), key=lambda i: i.id)
        assert [
            (line.kind, line.quantity, line.unit_amount_cents, line.amount_cents) for line in renewal.lines
        ] == [
            (LineKind.PLAN, 1, 900, 900),
            (LineKind.OVERAGE, 2, 50, 100),
        ]
        assert renewal.total_cents == 1000 and renewal.amount_paid_cents == 1000
        balance = credits.credit_balance(user.id)
        assert balance is not None
        assert (balance.left, balance.extra_used) == (10, 0)  # a fresh period: reset, no carry-over


def test_without_consent_no_extra_credit_is_used_and_the_renewal_has_no_overage(
    app: Flask, make_customer: Callable[..., User], client: FlaskClient
) -> None:
    user = _subscribed(app, make_customer, client)
    with time_machine.travel(DURING, tick=False):
        [study, other] = _studies(client, user, 2)
        _use_included(user, study, 10)
        assert _build_3d(client, other) == 402
    with time_machine.travel(RENEWAL, tick=False):
        jobs.run_once()
        credits.credit_balance(user.id)
        credits.credit_balance(user.id)
    renewal = max(invoices_for(user.id), key=lambda i: i.id)
    assert [line.kind for line in renewal.lines] == [LineKind.PLAN]
    assert _ledger(user, CreditKind.EXTRA) == 0
    assert _ledger(user, CreditKind.GRANT) == 20  # each period granted once


def test_credits_are_frozen_while_paused(
    client: FlaskClient, customer: User, make_customer: Callable[..., User]
) -> None:
    [study] = _studies(client, customer, 1)
    subscription = subscriptions.live_subscription(customer.id)
    assert subscription is not None
    subscription.status = SubscriptionStatus.PAUSED
    db.session.commit()

    response = client.post(f"/viewer/s{study.id}/{study.series[0].series_instance_uid}/build-3d")

    assert response.status_code == 402
    assert "credits are frozen until it resumes" in response.get_data(as_text=True)
    assert client.get(f"/viewer/s{study.id}").status_code == 200  # viewing stays allowed
    assert _ledger(customer, CreditKind.USE) == 0


def test_a_cap_that_is_not_an_amount_is_refused_and_nothing_changes(
    client: FlaskClient, customer: User
) -> None:
    for cap, message in (("ten", "Enter the cap in dollars"), ("0.10", "The cap must be at least $0.50")):
        response = client.post("/studies/credits/cap", data={"cap": cap})
        assert response.status_code == 422
        assert message in response.get_data(as_text=True)
    balance = credits.credit_balance(customer.id)
    assert balance is not None and balance.cap_cents == 0


def test_requests_at_once_never_spend_beyond_the_allowance_or_the_cap(app: Flask, customer: User) -> None:
    study_id = _row(customer).id
    for n in range(9):
        credits.spend_credit(customer.id, credits.EXPORT_STL, study_id, f"2.25.{n}")
    credits.set_overage_cap(customer.id, 50)  # room for one extra credit: one included + one extra left
    user_id = customer.id  # read here: the threads must not touch this session's objects
    start = threading.Barrier(6)
    outcomes: list[str] = []

    def spend(n: int) -> None:
        with app.app_context():
            try:
                start.wait(10)
                credits.spend_credit(user_id, credits.EXPORT_STL, study_id, f"2.25.race{n}")
                outcomes.append("spent")
            except credits.CreditsExhausted:
                outcomes.append("refused")
            finally:
                db.session.remove()

    threads = [threading.Thread(target=spend, args=(n,)) for n in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(outcomes) == ["refused"] * 4 + ["spent"] * 2
    assert (_ledger(customer, CreditKind.USE), _ledger(customer, CreditKind.EXTRA)) == (10, 1)


def test_each_stl_export_of_a_stored_study_spends_one_credit_and_says_so_first(
    client: FlaskClient, make_customer: Callable[..., User]
) -> None:
    surgeon = make_customer("surgeon@example.com", plan="surgical")
    login(client, surgeon)
    [study] = _studies(client, surgeon, 1)
    uid = study.series[0].series_instance_uid

    page = client.get(f"/viewer/s{study.id}").get_data(as_text=True)
    by_link = client.get(f"/viewer/s{study.id}/{uid}/surface.stl?lo=-2000&hi=3000")
    first = client.post(f"/viewer/s{study.id}/{uid}/surface.stl", data={"lo": "-2000", "hi": "3000"})
    second = client.post(f"/viewer/s{study.id}/{uid}/surface.stl", data={"lo": "-2000", "hi": "3000"})

    assert "Download STL (1 credit)" in page
    assert "Each STL export of a stored study uses 1 processing credit. 2000 of 2000 left" in page
    assert by_link.status_code == 400  # a plain link cannot spend a credit
    assert first.status_code == 200 and second.status_code == 200
    assert first.headers["Content-Disposition"].endswith('.stl"')
    assert _ledger(surgeon, CreditKind.USE) == 2
