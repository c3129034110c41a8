"""Subscribing and paying: billing details, the card (Stripe.js), 3-D Secure, and "update card and pay now".

The card number is typed into Stripe.js and goes to Stripe only. Our server receives the id of a
SetupIntent the browser confirmed, re-reads it from Stripe and charges through the billing services;
what the browser says is never trusted.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    flash,
    make_response,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user, login_required

from dicomportal.billing import cards, collection, profiles, subscriptions
from dicomportal.billing.errors import AlreadySubscribed, BillingError, GatewayUnavailable
from dicomportal.billing.profiles import BillingDetails
from dicomportal.billing.summary import (
    amount_due_cents,
    awaiting_authentication,
    first_invoice,
    first_period_end,
    own_payment,
    price_charge,
)
from dicomportal.billing_forms import (
    AuthenticationForm,
    BillingDetailsForm,
    CardSetupForm,
    country_choices,
)
from dicomportal.extensions import db
from dicomportal.formatting import format_money
from dicomportal.forms import render_form
from dicomportal.mail import deliver_pending
from dicomportal.models import (
    BillingReason,
    Interval,
    Payment,
    PaymentStatus,
    Plan,
    Price,
    Subscription,
    SubscriptionStatus,
)
from dicomportal.views._htmx import redirect_after_post

bp = Blueprint("billing", __name__)

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
PROFILE_FIELDS = (
    "tax_id",
    "name",
    "company",
    "address_line1",
    "address_line2",
    "city",
    "state",
    "postal_code",
    "country",
)


# --- helpers -------------------------------------------------------------------------------------


def stripe_js_url() -> str:
    """Stripe.js: served by localstripe in test mode (STRIPE_API_BASE), by Stripe otherwise."""
    base = current_app.config.get("STRIPE_API_BASE")
    return f"{base}/js.stripe.com/v3/" if base else "https://js.stripe.com/v3/"


def offer_or_404(plan_code: str) -> Price:
    """The price on sale for ``plan_code`` and ``?interval=`` (monthly when absent)."""
    plan = db.session.scalar(db.select(Plan).where(Plan.code == plan_code, Plan.active.is_(True)))
    interval = request.args.get("interval", Interval.MONTH.value)
    if plan is None or interval not in {i.value for i in Interval}:
        abort(404)
    price = plan.active_price(interval)
    if price is None:
        abort(404)
    return price


def step_url(endpoint: str, price: Price) -> str:
    return url_for(endpoint, plan_code=price.plan.code, interval=price.interval.value)


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


def no_live_subscription(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send a customer who already subscribed to their account (or to finish 3-D Secure) instead."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        subscription = subscriptions.live_subscription(current_user.id)
        if subscription is None:
            return view(*args, **kwargs)
        waiting = awaiting_authentication(subscription.id)
        if subscription.status == SubscriptionStatus.INCOMPLETE and waiting is not None:
            flash("Please confirm your payment with your bank to finish subscribing.", "info")
            return see_other(url_for("billing.authenticate", payment_id=waiting.id))
        flash(f"You already have the {subscription.price.plan.name} plan. Manage it here.", "info")
        return see_other(url_for("account.dashboard"))

    return wrapper


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


def authentication_page(payment: Payment, autostart: bool, message: str | None = None) -> Response:
    """The page whose script opens the bank's 3-D Secure dialog, then posts the payment id back."""
    return no_store(
        render_template(
            "billing/authenticate.html",
            payment=payment,
            autostart=autostart,
            message=message,
            stripe_js_url=stripe_js_url(),
        )
    )


def problem_page(title: str, message: str, retry: str, advice: str = "", status: int = 200) -> Response:
    """A payment that did not happen: say what went wrong, that nothing was charged, how to retry."""
    body = render_template(
        "billing/problem.html", title=title, message=message, advice=advice, retry_url=retry
    )
    return make_response(body, status)


def retry_url(payment: Payment) -> str:
    """Where to try again after a payment failed: the card step of the plan, or the card page."""
    subscription = payment.invoice.subscription
    if payment.invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE and subscription is not None:
        return step_url("billing.card_step", subscription.price)
    return url_for("billing.card")


def thank_you(payments: list[Payment]) -> None:
    """The flash after paying from the card page or the 3-D Secure page."""
    paid = [p for p in payments if p.status == PaymentStatus.SUCCEEDED]
    amount = format_money(sum(p.amount_cents for p in paid), paid[0].currency)
    first = any(p.invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE for p in paid)
    again = "" if first else " again"
    flash(
        f"Thank you! Your payment of {amount} went through and your subscription is active{again}.", "success"
    )


# --- subscribing -------------------------------------------------------------------------------


@bp.route("/subscribe/<plan_code>", methods=["GET", "POST"])
@login_required
@no_live_subscription
def subscribe(plan_code: str) -> Response | tuple[str, int]:
    """Step 1: the order summary and the billing details the invoices are addressed to."""
    price = offer_or_404(plan_code)
    profile = current_user.billing_profile
    form = BillingDetailsForm(obj=profile, data=None if profile else {"name": current_user.name})
    if form.validate_on_submit():
        profiles.save_billing_details(
            current_user, BillingDetails(**{f: form[f].data or None for f in PROFILE_FIELDS})
        )
        return see_other(step_url("billing.card_step", price))
    return render_form("billing/subscribe.html", form, price=price, renews_on=first_period_end(price))


@bp.get("/subscribe/<plan_code>/card")
@login_required
@no_live_subscription
def card_step(plan_code: str) -> Response:
    """Step 2: the card form. Stripe.js saves the card with a SetupIntent; nothing is charged yet."""
    price = offer_or_404(plan_code)
    profile = current_user.billing_profile
    if profile is None:
        return see_other(step_url("billing.subscribe", price))
    charge = price_charge(price, profile)
    return card_page(
        "billing/card_step.html",
        price=price,
        profile=profile,
        country_name=dict(country_choices()).get(profile.country, profile.country),
        charge=charge,
        renews_on=first_period_end(price),
    )


@bp.post("/subscribe/<plan_code>/confirm")
@login_required
@no_live_subscription
def confirm(plan_code: str) -> Response:
    """Subscribe with the card Stripe.js confirmed, and charge the first invoice at once."""
    price = offer_or_404(plan_code)
    form = CardSetupForm()
    if not form.validate_on_submit():
        show_on_card_page(NOT_CONFIRMED)
        return see_other(step_url("billing.card_step", price))
    try:
        subscription = subscriptions.subscribe(current_user.id, price.id, form.setup_intent_id.data)
    except AlreadySubscribed as exc:
        flash(str(exc), "info")
        return see_other(url_for("account.dashboard"))
    except BillingError as exc:
        failed_on_card_page(exc)
        return see_other(step_url("billing.card_step", price))
    deliver_pending()
    return after_subscribe(subscription, price)


def after_subscribe(subscription: Subscription, price: Price) -> Response:
    """Active: confirmation. Declined: the card step again. 3-D Secure: the bank's dialog."""
    if subscription.status == SubscriptionStatus.ENDED:
        show_on_card_page(DECLINED)
        return see_other(step_url("billing.card_step", price))
    waiting = awaiting_authentication(subscription.id)
    if waiting is not None:
        return see_other(url_for("billing.authenticate", payment_id=waiting.id))
    return see_other(url_for("billing.done"))


@bp.get("/subscribe/done")
@login_required
def done() -> Response | str:
    """The confirmation page: plan, amount paid, invoice number and renewal date (or "confirming")."""
    subscription = subscriptions.live_subscription(current_user.id)
    if subscription is None:
        return see_other(url_for("account.dashboard"))
    return render_template(
        "billing/done.html",
        subscription=subscription,
        invoice=first_invoice(subscription),
        waiting=awaiting_authentication(subscription.id),
    )


# --- 3-D Secure --------------------------------------------------------------------------------


@bp.get("/subscribe/authenticate/<int:payment_id>")
@login_required
def authenticate(payment_id: int) -> Response:
    """Ask the bank to confirm one of the customer's payments (3-D Secure), right away."""
    payment = own_payment(current_user.id, payment_id)
    if payment is None:
        abort(404)
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        return see_other(url_for("account.dashboard"))
    return authentication_page(payment, autostart=True)


@bp.post("/subscribe/complete")
@login_required
def complete() -> Response:
    """After the bank's dialog: re-read the payment at Stripe and say what happened.

    Someone else's payment id is a 404.
    """
    form = AuthenticationForm()
    if not form.validate_on_submit():
        abort(404)
    try:
        payment = subscriptions.complete_authentication(current_user.id, int(form.payment_id.data))
    except LookupError:
        abort(404)
    deliver_pending()
    return after_authentication(payment)


def after_authentication(payment: Payment) -> Response:
    """Paid: confirmation (new subscription) or the dashboard. Failed: say so. Else: still waiting."""
    new_subscription = payment.invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE
    if payment.status == PaymentStatus.REQUIRES_ACTION:
        return authentication_page(payment, autostart=False, message="Your bank is still waiting for you.")
    if payment.status in (PaymentStatus.FAILED, PaymentStatus.CANCELED):
        message = AUTHENTICATION_FAILED if new_subscription else RENEWAL_AUTHENTICATION_FAILED
        return problem_page("Payment not confirmed", message, retry_url(payment), TRY_AGAIN_ADVICE)
    if new_subscription:
        return see_other(url_for("billing.done"))
    if payment.status == PaymentStatus.SUCCEEDED:
        thank_you([payment])
    else:
        flash("We're confirming your payment with your bank and will email you a receipt.", "info")
    return see_other(url_for("account.dashboard"))


# --- update card and pay now (the link in dunning emails) --------------------------------------


@bp.get("/billing/card")
@login_required
def card() -> Response:
    """The card renewals are charged to: replace it, and pay any open invoice with it now."""
    return card_page(
        "billing/card.html",
        amount_due_cents=amount_due_cents(current_user.id),
        current_card=collection.default_card(current_user.id),
    )


@bp.post("/billing/card")
@login_required
def save_card() -> Response:
    """Save the card Stripe.js confirmed as the default, then charge the open invoices with it."""
    form = CardSetupForm()
    if not form.validate_on_submit():
        show_on_card_page(NOT_CONFIRMED)
        return see_other(url_for("billing.card"))
    try:
        payments = subscriptions.replace_card_and_pay(current_user, form.setup_intent_id.data)
    except BillingError as exc:
        failed_on_card_page(exc)
        return see_other(url_for("billing.card"))
    deliver_pending()
    return after_card_payments(payments)


def after_card_payments(payments: list[Payment]) -> Response:
    """3-D Secure first, then a decline, then the thank-you; no open invoice: "card updated"."""
    by_status = {p.status: p for p in payments}
    if PaymentStatus.REQUIRES_ACTION in by_status:
        return see_other(
            url_for("billing.authenticate", payment_id=by_status[PaymentStatus.REQUIRES_ACTION].id)
        )
    if PaymentStatus.FAILED in by_status:
        failed = by_status[PaymentStatus.FAILED]
        amount = format_money(failed.amount_cents, failed.currency)
        reason = failed.failure_message or "Your card was declined."
        show_on_card_page(f"Your card was saved, but the payment of {amount} did not go through: {reason}")
        return see_other(url_for("billing.card"))
    if PaymentStatus.SUCCEEDED in by_status:
        thank_you(payments)
    elif payments:
        flash("Your card was updated. We're confirming your payment and will email you a receipt.", "info")
    else:
        flash("Your card was updated.", "success")
    return see_other(url_for("account.dashboard"))


@bp.errorhandler(GatewayUnavailable)
def payment_service_unavailable(exc: GatewayUnavailable) -> Response:
    """Stripe did not answer: nothing was charged; the customer can simply try again."""
    db.session.rollback()
    retry = request.full_path if request.method == "GET" else url_for("account.dashboard")
    return problem_page("Payment service unavailable", UNAVAILABLE, retry, status=503)
