"""The worker's and the dashboard's queries are answered from indexes, on SQLite and PostgreSQL.

The statements are the ones the code really runs (captured while it runs), explained with their
own parameters; on PostgreSQL sequential scans are switched off for the EXPLAIN, so the plan
shows whether an index can serve the query at all, whatever the size of the test tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from dateutil.relativedelta import relativedelta
from flask import Flask
from sqlalchemy import event

from dicomportal import jobs
from dicomportal.billing import subscriptions
from dicomportal.extensions import db
from dicomportal.models import Subscription, User
from tests.helpers.auth import AuthActions

START = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
RENEWAL = START + relativedelta(months=1) + timedelta(hours=1)


@contextmanager
def statements() -> Iterator[list[tuple[str, Any]]]:
    """Every SQL statement (with its parameters) the app sends while the block runs."""
    seen: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_args: Any) -> None:
        seen.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", grab)
    try:
        yield seen
    finally:
        event.remove(db.engine, "before_cursor_execute", grab)


def plan_of(seen: list[tuple[str, Any]], *fragments: str, without: str = "\0") -> str:
    """The query plan of the statement containing every fragment (and not ``without``)."""
    (statement, parameters), *_others = [
        (s, p) for s, p in seen if all(f in s for f in fragments) and without not in s
    ]
    raw = db.engine.raw_connection()
    try:
        cursor = raw.cursor()
        if db.engine.dialect.name == "sqlite":
            cursor.execute("EXPLAIN QUERY PLAN " + statement, parameters)
        else:
            cursor.execute("SET enable_seqscan = off")
            cursor.execute("EXPLAIN " + statement, parameters)
        return "\n".join(str(row) for row in cursor.fetchall())
    finally:
        raw.rollback()
        raw.close()


@pytest.fixture
def due_and_pending(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> User:
    """A customer with a paid first invoice, a renewal pending payment, and a retry scheduled."""
    with time_machine.travel(START, tick=False):
        user = make_customer()
        subscribe(user, "professional")
    return user


def test_the_renewal_worker_claims_and_reconciles_through_indexes(due_and_pending: User) -> None:
    with statements() as seen:
        with time_machine.travel(RENEWAL, tick=False):
            subscriptions.renew(subscriptions.live_subscription(due_and_pending.id).id)  # left pending
        with time_machine.travel(RENEWAL + timedelta(minutes=5), tick=False):
            jobs.run_once()

    assert "ix_subscriptions_active_period_end" in plan_of(
        seen, "UPDATE subscriptions", "renewal_claimed_until"
    )
    assert "ix_payments_pending_created" in plan_of(seen, "FROM payments", "payments.created_at <=")
    assert "ix_invoices_open_next_attempt" in plan_of(seen, "FROM invoices", "invoices.next_attempt_at <=")


def test_the_dashboard_reads_invoices_and_amount_due_through_indexes(
    client: Any, auth: AuthActions, due_and_pending: User
) -> None:
    auth.login(email=due_and_pending.email)
    with statements() as seen:
        assert client.get("/account/").status_code == 200

    recent = plan_of(seen, "FROM invoices", "ORDER BY invoices.finalized_at DESC")
    assert "ix_invoices_user_finalized" in recent
    assert "TEMP B-TREE" not in recent and "Sort" not in recent  # read in order, never sorted
    owed = plan_of(seen, "FROM invoices", "invoices.user_id =", without="finalized_at DESC")  # open ones
    assert "ix_invoices_open_user" in owed or "ix_invoices_user_finalized" in owed
