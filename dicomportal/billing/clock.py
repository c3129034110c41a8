"""The only source of "now" in billing code.

Real time by default. Tests move it with ``time-machine``; the demo and ``dicomportal tick --now``
move it with :func:`travel_to`, which keeps an offset so time keeps flowing from the new point.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

_offset = timedelta(0)


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC) + _offset


def travel_to(moment: datetime) -> None:
    """Make :func:`now` answer ``moment`` from here on (and flow on from it)."""
    global _offset
    if moment.tzinfo is None:
        raise ValueError("travel_to needs a timezone-aware datetime")
    _offset = moment - datetime.now(UTC)


def reset() -> None:
    """Go back to real time."""
    global _offset
    _offset = timedelta(0)
