"""Accounts' scheduled work (registered with :mod:`dicomportal.jobs`)."""

from __future__ import annotations

from collections import Counter

from dicomportal import jobs
from dicomportal.accounts.sessions import purge_expired_sessions


@jobs.job("purge_expired_sessions", order=80)
def purge_expired_login_sessions() -> Counter[str]:
    """Delete login sessions past their lifetime (they no longer open anything)."""
    return Counter(purged=purge_expired_sessions())
