"""`dicomportal tick --now` and the worker loop drive the same jobs the tests call directly."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

import pytest
from dateutil.relativedelta import relativedelta
from flask import Flask

from dicomportal import jobs
from dicomportal.billing.invoicing import invoices_for
from dicomportal.models import InvoiceStatus, Subscription, User
from tests.helpers.stripe import intents_of


def test_twelve_ticks_a_month_apart_renew_twelve_times(
    app: Flask, runner: object, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    user = make_customer()
    first = subscribe(user, "patient")
    for month in range(1, 13):
        at = first.billing_anchor + relativedelta(months=month, minutes=5)
        result = runner.invoke(args=["tick", "--now", at.isoformat()])  # type: ignore[attr-defined]
        assert result.exit_code == 0, result.output
        assert "renew_due_subscriptions: charged=1 renewed=1" in result.output

    invoices = invoices_for(user.id)
    assert len(invoices) == 13 and {i.status for i in invoices} == {InvoiceStatus.PAID}
    assert len(intents_of(app, user)) == 13


def test_tick_refuses_a_date_it_cannot_read(app: Flask, runner: object) -> None:
    result = runner.invoke(args=["tick", "--now", "next tuesday"])  # type: ignore[attr-defined]
    assert result.exit_code != 0
    assert "is not an ISO date-time" in result.output


def test_the_worker_loop_stops_when_asked(app: Flask, monkeypatch: pytest.MonkeyPatch) -> None:
    stop = threading.Event()
    passes: list[int] = []
    original = jobs.run_once

    def counting() -> dict[str, Counter[str]]:
        passes.append(1)
        stop.set()
        return original()

    monkeypatch.setattr(jobs, "run_once", counting)
    thread = threading.Thread(target=lambda: _in_context(app, stop))
    thread.start()
    thread.join(10)
    assert not thread.is_alive() and passes == [1]


def _in_context(app: Flask, stop: threading.Event) -> None:
    with app.app_context():
        jobs.run_forever(0.05, stop)


def test_the_worker_logs_a_pass_only_when_it_did_something(
    app: Flask, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An idle worker would otherwise write a line every 30 seconds, forever."""
    stop = threading.Event()
    original = jobs.run_once

    def one_pass() -> dict[str, Counter[str]]:
        stop.set()
        return original()

    monkeypatch.setattr(jobs, "run_once", one_pass)
    caplog.set_level("INFO", logger="dicomportal.jobs")
    jobs.run_forever(0.01, stop)
    assert "worker pass" not in caplog.text  # nothing was due: deliver_mail's sent=0 is no news
