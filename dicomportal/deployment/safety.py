"""Settings the app refuses to start with: a live Stripe key next to a missing or public secret.

Which combinations, and why they are refused rather than warned about (``dicomportal check``
lists the rest): with a live key real money moves, so
- a missing webhook secret loses every payment event Stripe sends (Stripe refuses to verify
  without one), and a public one (the README's old default, the demo's, the tests') lets anyone
  forge "payment succeeded" events;
- a test or demo publishable key saves cards in another Stripe mode than the one charged, so no
  renewal could ever be collected;
- ``STRIPE_API_BASE`` would send the live secret key to another server than Stripe's;
- demo mode publishes every email (password-reset links included) at ``/dev/outbox`` and lets any
  visitor move the billing clock at ``/dev/clock``.
A test key is not refused: no real money moves, and staging setups use one.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

LIVE_SECRET_KEY_PREFIXES = ("sk_live_", "rk_live_")  # secret and restricted keys

# Published in this repository (README's old default, ``dicomportal demo``, tests/conftest.py):
# anyone can sign a webhook with these or paste these keys.
PUBLIC_WEBHOOK_SECRETS = frozenset(
    {"whsec_dicomportal_demo", "whsec_demo_dicomportal", "whsec_test_dicomportal"}
)
PUBLIC_STRIPE_KEYS = frozenset(
    {"sk_test_dicomportal", "pk_test_dicomportal", "sk_test_demo_dicomportal", "pk_test_demo_dicomportal"}
)


@dataclass(frozen=True)
class Problem:
    """One setting to fix: what is wrong with it and what to set instead."""

    setting: str
    why: str
    fix: str


class UnsafeSettings(RuntimeError):
    """The app will not start with these settings; the message names each setting to fix."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = problems
        lines = [
            f"dicomportal will not start: {len(problems)} setting(s) are unsafe with a live Stripe key.",
            *(f"  - {p.setting}: {p.why} Fix: {p.fix}" for p in problems),
            "Run `dicomportal check` for the whole deployment checklist.",
        ]
        super().__init__("\n".join(lines))


def is_live_key(key: object) -> bool:
    """True for a live Stripe secret or restricted key (real money moves)."""
    return str(key or "").startswith(LIVE_SECRET_KEY_PREFIXES)


def webhook_secret_problem(secret: str) -> str | None:
    """Why this webhook signing secret cannot protect the endpoint, or ``None`` when it can."""
    if not secret:
        return "not set: no Stripe event can be verified, so every payment update Stripe sends is lost."
    if secret in PUBLIC_WEBHOOK_SECRETS:
        return f"{secret!r} is published with dicomportal: anyone can forge payment events with it."
    return None


def startup_problems(config: Mapping[str, Any]) -> list[Problem]:
    """The settings that make this configuration dangerous with a live Stripe key (none without one)."""
    if not is_live_key(config.get("STRIPE_SECRET_KEY")):
        return []
    problems = []
    if config.get("DEMO_MODE"):
        problems.append(
            Problem(
                "DICOMPORTAL_DEMO",
                "demo mode is on: /dev/outbox shows every email (password-reset links included) "
                "and /dev/clock lets any visitor move billing time.",
                "unset DICOMPORTAL_DEMO.",
            )
        )
    why = webhook_secret_problem(str(config.get("STRIPE_WEBHOOK_SECRET") or ""))
    if why:
        problems.append(
            Problem(
                "STRIPE_WEBHOOK_SECRET",
                why,
                "set it to your endpoint's signing secret, whsec_... "
                "(Stripe Dashboard > Developers > Webhooks).",
            )
        )
    publishable = str(config.get("STRIPE_PUBLISHABLE_KEY") or "")
    if not publishable.startswith("pk_live_"):
        problems.append(
            Problem(
                "STRIPE_PUBLISHABLE_KEY",
                f"is {publishable or 'empty'!r}, not a live publishable key: cards saved in the browser "
                "would belong to another Stripe mode and never be charged.",
                "set the pk_live_... key of the same Stripe account.",
            )
        )
    if config.get("STRIPE_API_BASE"):
        problems.append(
            Problem(
                "STRIPE_API_BASE",
                f"sends the live secret key to {config['STRIPE_API_BASE']} instead of Stripe.",
                "unset STRIPE_API_BASE (it is for localstripe only).",
            )
        )
    return problems


def refuse_unsafe_settings(config: Mapping[str, Any]) -> None:
    """Stop the app from starting with a dangerous configuration (tests, with TESTING, are exempt).

    :raises UnsafeSettings: naming each setting to fix.
    """
    if config.get("TESTING"):
        return
    problems = startup_problems(config)
    if problems:
        raise UnsafeSettings(problems)
