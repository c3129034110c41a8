"""Mail's scheduled work (registered with :mod:`dicomportal.jobs`): last in every pass, so the
emails the other jobs queued go out in the same pass."""

from __future__ import annotations

from collections import Counter

from dicomportal import jobs
from dicomportal.mail.outbox import deliver_pending


@jobs.job("deliver_mail", order=90)
def deliver_mail() -> Counter[str]:
    """Send the outbox's unsent emails (when MAIL_BACKEND is smtp)."""
    return Counter(sent=deliver_pending())
