"""What a customer is told about a payment that did not go through.

Stripe's ``message`` is written for developers when the request itself was refused (an
``invalid_request_error`` says which parameter was wrong), so it is kept for staff on the
Payment row and never shown to customers: they get a sentence chosen by the decline code
(https://docs.stripe.com/declines/codes), and every code not listed gets the plain one.
"""

from __future__ import annotations

from dicomportal.models import Payment

DECLINED = "Your card was declined."

_BY_CODE = {
    "authentication_required": "Your bank asks you to confirm this payment (3-D Secure).",
    "insufficient_funds": "Your card has insufficient funds.",
    "expired_card": "Your card has expired.",
    "incorrect_cvc": "The card's security code is incorrect.",
    "incorrect_number": "The card number is incorrect.",
    "card_velocity_exceeded": "Your card's spending limit was reached.",
    "lost_card": DECLINED,
    "stolen_card": DECLINED,
    "fraudulent": DECLINED,
    "processing_error": "Your bank had a problem processing the payment.",
    "try_again_later": "Your bank had a problem processing the payment.",
    "payment_intent_authentication_failure": "The payment was not confirmed with your bank.",
    "no_card": "There is no card on your account.",
}


def customer_reason(code: str | None) -> str:
    """One sentence for the customer about a decline code (Stripe's, or ours like ``no_card``)."""
    return _BY_CODE.get(code or "", DECLINED)


def reason_for(payment: Payment) -> str:
    return customer_reason(payment.failure_code)
