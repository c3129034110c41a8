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


class PaymentRejected(BillingError):
    """Stripe refused the request for good (no such customer or card, amount too small, ...).

    Retrying the same request cannot succeed, so a charge that meets this is recorded as failed
    with Stripe's code and the invoice goes into dunning like a decline.
    """

    def __init__(self, message: str, code: str | None = None, http_status: int | None = None) -> None:
        super().__init__(message)
        self.code = code or "invalid_request"
        self.http_status = http_status

    @property
    def not_found(self) -> bool:
        """Stripe has no such object (HTTP 404 / ``resource_missing``)."""
        return self.http_status == 404 or self.code == "resource_missing"


class GatewayMisconfigured(GatewayUnavailable):
    """Stripe refused our credentials (wrong or revoked key): an operator must fix the settings.

    Nothing is the customer's fault, so nothing is marked failed; work stays pending.
    """


class RateLimited(GatewayUnavailable):
    """Stripe asked us to slow down (HTTP 429): wait, then try again."""


class PlanChangeNotAllowed(BillingError):
    """The plan change, pause, cancellation or restore asked for does not apply right now."""


class PreviewOutdated(BillingError):
    """The amount shown before confirming is no longer what confirming would charge."""
