"""The two places other domains plug into billing: extra lines on a renewal invoice (usage in the
period that ended), and the purge of a customer's data after the restore window."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from flask import Flask

from dicomportal.billing import extras, retention, subscriptions
from dicomportal.billing.invoicing import LineSpec, invoices_for
from dicomportal.models import LineKind, Subscription, User

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture
def clean_registries() -> Iterator[None]:
    sources, purgers = dict(extras._SOURCES), dict(retention._PURGERS)
    extras._SOURCES.clear(), retention._PURGERS.clear()  # only the test's own (the domains' are tested there)
    yield
    extras._SOURCES.clear(), extras._SOURCES.update(sources)
    retention._PURGERS.clear(), retention._PURGERS.update(purgers)


def test_a_registered_source_adds_its_lines_for_the_period_that_ended_to_the_renewal_invoice(
    app: Flask,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    clean_registries: None,
) -> None:
    asked: list[tuple[datetime, datetime]] = []

    def overage(subscription: Subscription, start: datetime, end: datetime) -> list[LineSpec]:
        asked.append((start, end))
        return [LineSpec(LineKind.OVERAGE, "Extra processing credits", 150, quantity=3)]

    extras.register_line_source("test-overage", overage)
    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user, "patient")
    with time_machine.travel(START + relativedelta(months=1, hours=1), tick=False):
        subscriptions.renew(subscriptions.live_subscription(user.id).id)

    renewal = max(invoices_for(user.id), key=lambda i: i.id)
    assert [
        (line.kind, line.quantity, line.unit_amount_cents, line.amount_cents) for line in renewal.lines
    ] == [
        (LineKind.PLAN, 1, 900, 900),
        (LineKind.OVERAGE, 3, 50, 150),
    ]
    assert renewal.total_cents == 1050
    assert asked == [(START, START + relativedelta(months=1))]  # the period that ended


def test_purging_a_customer_runs_every_registered_purger_and_reports_what_each_deleted(
    clean_registries: None,
) -> None:
    purged: list[int] = []
    retention.register_purger("files", lambda user_id: purged.append(user_id) or {"files": 2})
    retention.register_purger("links", lambda user_id: {"links": 1})

    assert retention.purge_customer_data(7) == {"files": {"files": 2}, "links": {"links": 1}}
    assert purged == [7]
