"""Where the tests run: CI or not, Chromium, the webhook secret the test app uses."""

from __future__ import annotations

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() == "true"


CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


WEBHOOK_SECRET = "whsec_test_dicomportal"


def require(condition: bool, why: str) -> None:
    """Skip locally, fail in CI: CI must run every test."""
    if not condition:
        (pytest.fail if IN_CI else pytest.skip)(why)
