"""Email: rendered into the outbox with the change it reports, delivered over SMTP afterwards."""

from dicomportal.mail.outbox import (
    MAX_ATTEMPTS,
    absolute_url,
    commit_and_deliver,
    deliver_pending,
    queue_email,
)
from dicomportal.mail.smtp import init_app

__all__ = ["MAX_ATTEMPTS", "absolute_url", "commit_and_deliver", "deliver_pending", "init_app", "queue_email"]
