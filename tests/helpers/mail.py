"""A real SMTP server in the test process (aiosmtpd) and what it received."""

from __future__ import annotations

from dataclasses import dataclass, field
from email.message import EmailMessage


@dataclass
class SmtpSink:
    """A real SMTP server (aiosmtpd) in this process; ``messages`` is what it received."""

    host: str
    port: int
    messages: list[EmailMessage] = field(default_factory=list)

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if address.lower() in str(m["To"]).lower()]

    def last_to(self, address: str) -> EmailMessage:
        found = self.to(address)
        assert found, f"no mail to {address}; received: {[str(m['To']) for m in self.messages]}"
        return found[-1]

    @staticmethod
    def text(message: EmailMessage) -> str:
        part = message.get_body(preferencelist=("plain",)) or message
        return str(part.get_content())
