"""What the payment pages share: Stripe.js, the card form's page, the 3-D Secure page, problem
pages and the messages they show. The ``checkout`` and ``billing`` blueprints use these.

The card number is typed into Stripe.js and goes to Stripe only. Our server receives the id of a
SetupIntent the browser confirmed, re-reads it from Stripe and charges through the billing services;
what the browser says is never trusted.
"""

from __future__ import annotations

from typing import Any

from flask import Response, current_app, flash, make_response, render_template, request, session, url_for
from flask_login import current_user

from dicomportal.billing import cards
from dicomportal.billing.collection import needs_confirming_on_session
from dicomportal.billing.errors import BillingError, GatewayUnavailable
from dicomportal.billing.money import format_money
from dicomportal.extensions import db
from dicomportal.models import BillingReason, Payment, PaymentMethod, PaymentStatus
from dicomportal.views._htmx import redirect_after_post

DECLINED = "Your card was declined. Nothing was charged."
NOT_CONFIRMED = "We could not confirm your card. Please enter it again."
UNAVAILABLE = "We couldn't reach our payment service. Nothing was charged. Please try again in a minute."
AUTHENTICATION_FAILED = (
    "Authentication failed. You have not been charged and your subscription is not active."
)
RENEWAL_AUTHENTICATION_FAILED = (
    "Authentication failed. You have not been charged and your payment is still due."
)
TRY_AGAIN_ADVICE = (
    "You can try again with the same card, or use another one. "
    "If it keeps failing, your bank can tell you why."
)
CARD_ERROR_KEY = "billing_card_error"


def stripe_js_url() -> str:
    """Stripe.js: served by localstripe in test mode (STRIPE_API_BASE), by Stripe otherwise."""
    base = current_app.config.get("STRIPE_API_BASE")
    return f"{base}/js.stripe.com/v3/" if base else "https://js.stripe.com/v3/"


def see_other(location: str) -> Response:
    return redirect_after_post(location)


def no_store(body: str) -> Response:
    """Pages that carry a Stripe client secret are never cached."""
    response = make_response(body)
    response.headers["Cache-Control"] = "no-store"
    return response


def show_on_card_page(message: str) -> None:
    """Keep a payment error for the card page to show next to the form (a toast would fade away)."""
    session[CARD_ERROR_KEY] = message


def failed_on_card_page(exc: BillingError) -> None:
    """A service refused: drop what it left unfinished, and explain on the card page."""
    db.session.rollback()
    show_on_card_page(UNAVAILABLE if isinstance(exc, GatewayUnavailable) else str(exc))


def card_page(template: str, **context: Any) -> Response:
    """A page with the card form: the customer's open SetupIntent for Stripe.js (one is reused
    across views, see ``cards.start_card_setup``), and any error kept for it."""
    setup = cards.start_card_setup(current_user)
    context |= {
        "setup": setup,
        "stripe_js_url": stripe_js_url(),
        "card_error": session.pop(CARD_ERROR_KEY, None),
    }
    return no_store(render_template(template, **context))


def authentication_page(
    payment: Payment, autostart: bool, message: str | None = None, card: PaymentMethod | None = None
) -> Response:
    """The page whose script opens the bank's 3-D Secure dialog, then posts the payment id back.

    With ``card``: the payment still has to be confirmed with the customer present first (a
    renewal the bank held); the page's button posts that, with this saved card, no script needed.
    """
    return no_store(
        render_template(
            "checkout/authenticate.html",
            payment=payment,
            autostart=autostart,
            message=message,
            card=card,
            confirm_first=card is not None or needs_confirming_on_session(payment),
            stripe_js_url=stripe_js_url(),
        )
    )


def problem_page(title: str, message: str, retry: str, advice: str = "", status: int = 200) -> Response:
    """A payment that did not happen: say what went wrong, that nothing was charged, how to retry."""
    body = render_template(
        "billing/problem.html", title=title, message=message, advice=advice, retry_url=retry
    )
    return make_response(body, status)


def thank_you(payments: list[Payment]) -> None:
    """The flash after paying from the card page or the 3-D Secure page."""
    paid = [p for p in payments if p.status == PaymentStatus.SUCCEEDED]
    amount = format_money(sum(p.amount_cents for p in paid), paid[0].currency)
    first = any(p.invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE for p in paid)
    again = "" if first else " again"
    flash(
        f"Thank you! Your payment of {amount} went through and your subscription is active{again}.", "success"
    )


def service_unavailable(exc: GatewayUnavailable) -> Response:
    """Stripe did not answer: nothing was charged; the customer can simply try again."""
    db.session.rollback()
    retry = request.full_path if request.method == "GET" else url_for("account.dashboard")
    return problem_page("Payment service unavailable", UNAVAILABLE, retry, status=503)
