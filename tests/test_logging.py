"""The app's loggers (jobs, webhooks, mail) keep printing after migrations ran in the same process."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from flask_migrate import upgrade

from dicomportal import create_app

# What the demo does: create the app, migrate, then run jobs that log.
DEMO_LIKE = """
import logging, sys
from flask_migrate import upgrade
from dicomportal import create_app

app = create_app({"SQLALCHEMY_DATABASE_URI": sys.argv[1]}, instance_path=sys.argv[2])
with app.app_context():
    upgrade()
logging.getLogger("dicomportal.billing.jobs").warning("renewal of subscription 7 failed")
logging.getLogger("dicomportal.billing.webhooks").info("event evt_123 handled")
"""


class Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__()
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def test_a_billing_logger_still_emits_after_migrations(tmp_path: Path) -> None:
    jobs_log = logging.getLogger("dicomportal.billing.jobs")  # exists before the migration runs
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'logs.db'}", "TESTING": True},
        instance_path=str(tmp_path),
    )
    with app.app_context():
        upgrade()
        app.extensions["sqlalchemy"].engine.dispose()
    collect = Collect()
    jobs_log.addHandler(collect)
    try:
        jobs_log.warning("payment %s failed", 42)
    finally:
        jobs_log.removeHandler(collect)

    assert not jobs_log.disabled
    assert collect.messages == ["payment 42 failed"]


def test_job_and_webhook_logs_reach_stderr_in_a_demo_like_process(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DATABASE_URL", "SECRET_KEY"))}
    result = subprocess.run(
        [sys.executable, "-c", DEMO_LIKE, f"sqlite:///{tmp_path / 'demo.db'}", str(tmp_path)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )

    assert result.returncode == 0, result.stderr
    assert "renewal of subscription 7 failed" in result.stderr
    assert "event evt_123 handled" in result.stderr  # INFO, not only warnings
