"""Domain errors raised by billing services; their messages are safe to show to the customer."""

from __future__ import annotations


class BillingError(Exception):
    """A billing request that cannot be carried out."""


class GatewayUnavailable(BillingError):
    """Stripe could not be reached or answered with a server error; the outcome is unknown."""


class CardDeclined(BillingError):
    """The card was refused (when saving it or when charging it)."""

    def __init__(self, message: str, code: str | None = None) -> None:
        super().__init__(message)
        self.code = code


class AlreadySubscribed(BillingError):
    """The customer already has a subscription that has not ended."""


class PlanNotAvailable(BillingError):
    """The plan or price asked for is not on sale."""


class PaymentSetupFailed(BillingError):
    """The card could not be saved (e.g. 3-D Secure was not completed)."""


class ChargeInProgress(BillingError):
    """Another attempt to collect this invoice is already under way."""
