"""The events the webhook endpoint must receive are one list (billing.webhook_events.REQUIRED_EVENTS):
the handlers table and README's setup step are held to it, so they cannot drift apart."""

from __future__ import annotations

import re
from pathlib import Path

from dicomportal.billing.webhook_events import REQUIRED_EVENTS, missing_events
from dicomportal.billing.webhooks import HANDLERS

README = Path(__file__).resolve().parents[2] / "README.md"
EVENT = re.compile(r"`([a-z_]+(?:\.[a-z_]+)+)`")


def readme_webhook_step() -> str:
    text = README.read_text()
    start = text.index("add a webhook endpoint\n   `BASE_URL/webhooks/stripe`")
    return text[start : text.index("`dicomportal check` reads the account's endpoints", start)]


def test_readme_subscribes_the_endpoint_to_exactly_the_required_events() -> None:
    listed = [name for name in EVENT.findall(readme_webhook_step()) if not name.endswith(".py")]

    assert sorted(listed) == sorted(REQUIRED_EVENTS)


def test_every_handled_event_is_a_required_one() -> None:
    assert set(HANDLERS) - set(REQUIRED_EVENTS) == set()


def test_every_required_event_has_a_handler() -> None:
    assert set(REQUIRED_EVENTS) - set(HANDLERS) == set()


def test_an_endpoint_for_all_events_misses_none_and_one_short_misses_that_one() -> None:
    assert missing_events({"*"}) == []
    assert missing_events(set(REQUIRED_EVENTS) - {"refund.failed"}) == ["refund.failed"]
