"""Lines other domains add to a renewal invoice, for what the customer used in the period that
ended (e.g. processing credits beyond the plan, which the studies domain counts).

A source registers here; a renewal asks every source for the lines of the period just ended and
puts them on the new invoice with the plan line. Billing never imports the sources.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from dicomportal.billing.invoicing import LineSpec
from dicomportal.models import Subscription

# A source returns the lines for ``subscription``'s usage from ``start`` to ``end`` (the period
# that just ended). It must be deterministic for the same arguments: a renewal that is retried
# after a crash asks again and must get the same lines.
LineSource = Callable[[Subscription, datetime, datetime], list[LineSpec]]

_SOURCES: dict[str, LineSource] = {}


def register_line_source(name: str, source: LineSource) -> None:
    """Register ``source`` under ``name`` (registering a name again replaces it)."""
    _SOURCES[name] = source


def renewal_lines(subscription: Subscription, start: datetime, end: datetime) -> list[LineSpec]:
    """Every source's lines for the period ``start``..``end``, in source-name order."""
    return [line for _name, source in sorted(_SOURCES.items()) for line in source(subscription, start, end)]
