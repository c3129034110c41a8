"""A pause and its resume (or a restore) start a new period outside the renewal: the invoice that
starts it must carry what the renewal would have, the storage add-on in force and the extra
credits used in the period that ended."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import time_machine
from dateutil.relativedelta import relativedelta
from flask import Flask
from flask.testing import FlaskClient

from dicomportal import jobs
from dicomportal.billing import pause, subscriptions
from dicomportal.billing.invoicing import invoices_for
from dicomportal.models import LineKind, User
from dicomportal.studies import credits
from tests.helpers.stripe import GOOD_CARD, confirm_card_setup, price_id
from tests.helpers.studies import fill_storage, login

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


def test_resuming_a_pause_bills_the_add_on_and_the_extra_credits_of_the_last_period(
    app: Flask, make_customer: Callable[..., User], client: FlaskClient
) -> None:
    with time_machine.travel(START, tick=False):
        user = make_customer(status=None)
        subscription = subscriptions.subscribe(
            user.id, price_id("patient"), confirm_card_setup(app, user, GOOD_CARD)
        )
        login(client, user)
    with time_machine.travel(START + timedelta(days=10), tick=False):
        assert client.post("/studies/storage/extra-storage-100gb/add").status_code == 303
        study_id = fill_storage(user, leave_bytes=100 * 1024**3).id
        credits.set_overage_cap(user.id, 100)
        for n in range(12):  # 10 included, 2 extra
            credits.spend_credit(user.id, credits.BUILD_3D, study_id, f"2.25.{n}")
        pause.pause_subscription(user.id, subscription.id)
    with time_machine.travel(START + relativedelta(months=1) + timedelta(hours=1), tick=False):
        jobs.run_once()  # the paid period ends: the pause begins, nothing is charged
    with time_machine.travel(START + relativedelta(months=1) + timedelta(days=20), tick=False):
        pause.resume_now(user.id, subscription.id)

    resumed = max(invoices_for(user.id), key=lambda i: i.id)
    assert sorted((line.kind, line.amount_cents) for line in resumed.lines) == sorted(
        [(LineKind.PLAN, 900), (LineKind.ADDON, 1000), (LineKind.OVERAGE, 100)]
    )
