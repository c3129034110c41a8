"""SQL statements and commits per renewal: a pass over N due subscriptions, counted at the engine.

    .venv/bin/python bench/renewal_statements.py [--due 20]

Subscribes N customers through the real flow (localstripe), moves the clock to their renewal and
runs the renewal job once, counting every statement the engine sends (by kind) and every commit.
Never part of the test suite.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

import time_machine
from dateutil.relativedelta import relativedelta
from sqlalchemy import event

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--due", type=int, default=20)
    args = parser.parse_args()

    from flask_migrate import upgrade

    from dicomportal import create_app
    from dicomportal.accounts import create_user
    from dicomportal.billing import subscriptions
    from dicomportal.billing.catalog import seed_catalog
    from dicomportal.billing.jobs import renew_due_subscriptions
    from dicomportal.devtools.stripe_server import LocalStripe
    from dicomportal.extensions import db
    from dicomportal.models import BillingProfile
    from tests.helpers.stripe import GOOD_CARD, confirm_card_setup, price_id

    start = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)
    workdir = tempfile.mkdtemp()
    with LocalStripe() as stripe_server:
        config = {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir}/count.db",
            "STRIPE_API_BASE": stripe_server.api_base,
            "MAIL_BACKEND": "outbox",
            "SECRET_KEY": "bench",
            "STRIPE_CONCURRENCY": 1,  # one at a time, so the count is per renewal, not interleaved
        }
        app = create_app(config, instance_path=workdir)
        with app.app_context():
            upgrade()
            seed_catalog()
            with time_machine.travel(start, tick=False):
                for n in range(args.due):
                    user = create_user(f"count{n}@example.com", "correct horse battery", "Count")
                    user.billing_profile = BillingProfile(
                        name="Count",
                        address_line1="1 Main St",
                        city="Springfield",
                        postal_code="12345",
                        country="US",
                    )
                    db.session.commit()
                    subscriptions.subscribe(
                        user.id, price_id("patient"), confirm_card_setup(app, user, GOOD_CARD)
                    )
            seen: Counter[str] = Counter()

            def statement(_conn: object, _cursor: object, sql: str, *_args: object) -> None:
                seen[sql.split()[0].upper()] += 1

            def commit(_conn: object) -> None:
                seen["COMMIT"] += 1

            event.listen(db.engine, "before_cursor_execute", statement)
            event.listen(db.engine, "commit", commit)
            with time_machine.travel(start + relativedelta(months=1, hours=1), tick=False):
                outcome = renew_due_subscriptions()
    statements = sum(n for kind, n in seen.items() if kind != "COMMIT")
    print(f"renewal job: {dict(outcome)}")
    per = {kind: round(n / args.due, 1) for kind, n in sorted(seen.items())}
    print(f"per renewal: {statements / args.due:.1f} statements {per}")


if __name__ == "__main__":
    main()
