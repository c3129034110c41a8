"""What happens to a customer's data once their subscription has ended and the restore window has
passed: every domain that keeps customer data registers a purger here, and billing's purge job
calls them all (ARCHITECTURE.md sections 4 and 12).

Billing decides when (it owns the lifecycle); the domains decide what (studies delete stored
files and share links, for instance). Billing never imports them: they register themselves.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

# A purger deletes one customer's data of its kind and says what it deleted, e.g.
# {"studies": 3, "files": 412, "bytes": 219_000_000}. It must be idempotent (a purge interrupted
# by a crash runs again) and raise only when it could not finish (the purge is then retried).
Purger = Callable[[int], Mapping[str, int]]

_PURGERS: dict[str, Purger] = {}


def register_purger(name: str, purger: Purger) -> None:
    """Register ``purger`` under ``name`` (registering a name again replaces it)."""
    _PURGERS[name] = purger


def purge_customer_data(user_id: int) -> dict[str, dict[str, int]]:
    """Run every registered purger for ``user_id``; what each deleted, by purger name.

    :raises Exception: a purger could not finish; those before it have run (they are idempotent).
    """
    return {name: dict(purger(user_id)) for name, purger in sorted(_PURGERS.items())}
