"""Subscribing: billing details, the card (Stripe.js, a SetupIntent), the first charge and its
3-D Secure, and the confirmation page. Renewal payments' 3-D Secure uses the same two pages."""

from __future__ import annotations

from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, abort, flash, render_template, request, url_for
from flask_login import current_user, login_required
from sqlalchemy import select

from dicomportal.billing import profiles, subscriptions
from dicomportal.billing.collection import needs_confirming_on_session
from dicomportal.billing.errors import AlreadySubscribed, BillingError, GatewayUnavailable
from dicomportal.billing.summary import (
    awaiting_authentication,
    first_invoice,
    first_period_end,
    own_payment,
    price_charge,
)
from dicomportal.extensions import db
from dicomportal.mail import deliver_pending
from dicomportal.models import BillingReason, Interval, Payment, PaymentStatus, Plan, Price, Subscription
from dicomportal.views.forms import render_form
from dicomportal.views.forms.billing import (
    AuthenticationForm,
    BillingDetailsForm,
    CardSetupForm,
    country_choices,
)
from dicomportal.views.payments import (
    AUTHENTICATION_FAILED,
    DECLINED,
    NOT_CONFIRMED,
    RENEWAL_AUTHENTICATION_FAILED,
    TRY_AGAIN_ADVICE,
    authentication_page,
    card_page,
    failed_on_card_page,
    problem_page,
    see_other,
    service_unavailable,
    show_on_card_page,
    thank_you,
)

bp = Blueprint("checkout", __name__, url_prefix="/checkout")
bp.register_error_handler(GatewayUnavailable, service_unavailable)


def offer_or_404(plan_code: str) -> Price:
    """The price on sale for ``plan_code`` and ``?interval=`` (monthly when absent)."""
    plan = db.session.scalar(select(Plan).where(Plan.code == plan_code, Plan.active.is_(True)))
    interval = request.args.get("interval", Interval.MONTH.value)
    if plan is None or interval not in {i.value for i in Interval}:
        abort(404)
    price: Price | None = plan.active_price(interval)
    if price is None:
        abort(404)
    return price


def step_url(endpoint: str, price: Price) -> str:
    return url_for(endpoint, plan_code=price.plan.code, interval=price.interval.value)


def no_live_subscription(view: Callable[..., Any]) -> Callable[..., Any]:
    """Send a customer who already subscribed to their account (or to finish 3-D Secure) instead."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        subscription = subscriptions.live_subscription(current_user.id)
        if subscription is None:
            return view(*args, **kwargs)
        waiting = awaiting_authentication(subscription.id)
        if subscription.is_incomplete and waiting is not None:
            flash("Please confirm your payment with your bank to finish subscribing.", "info")
            return see_other(url_for("checkout.authenticate", payment_id=waiting.id))
        flash(f"You already have the {subscription.price.plan.name} plan. Manage it here.", "info")
        return see_other(url_for("account.dashboard"))

    return wrapper


def retry_url(payment: Payment) -> str:
    """Where to try again after a payment failed: the card step of the plan, or the card page."""
    subscription = payment.invoice.subscription
    if payment.invoice.billing_reason == BillingReason.SUBSCRIPTION_CREATE and subscription is not None:
        return step_url("checkout.card", subscription.price)
    return url_for("billing.card")


# --- subscribing -------------------------------------------------------------------------------


@bp.route("/<plan_code>", methods=["GET", "POST"])
@login_required
@no_live_subscription
def details(plan_code: str) -> Response | tuple[str, int]:
    """Step 1: the order summary and the billing details the invoices are addressed to."""
    price = offer_or_404(plan_code)
    profile = current_user.billing_profile
    form = BillingDetailsForm(obj=profile, data=None if profile else {"name": current_user.name})
    if form.validate_on_submit():
        profiles.save_billing_details(current_user, form.details())
        return see_other(step_url("checkout.card", price))
    return render_form("checkout/details.html", form, price=price, renews_on=first_period_end(price))


@bp.get("/<plan_code>/card")
@login_required
@no_live_subscription
def card(plan_code: str) -> Response:
    """Step 2: the card form. Stripe.js saves the card with a SetupIntent; nothing is charged yet."""
    price = offer_or_404(plan_code)
    profile = current_user.billing_profile
    if profile is None:
        return see_other(step_url("checkout.details", price))
    charge = price_charge(price, profile)
    return card_page(
        "checkout/card.html",
        price=price,
        profile=profile,
        country_name=dict(country_choices()).get(profile.country, profile.country),
        charge=charge,
        renews_on=first_period_end(price),
    )


@bp.post("/<plan_code>/confirm")
@login_required
@no_live_subscription
def confirm(plan_code: str) -> Response:
    """Subscribe with the card Stripe.js confirmed, and charge the first invoice at once."""
    price = offer_or_404(plan_code)
    form = CardSetupForm()
    if not form.validate_on_submit():
        show_on_card_page(NOT_CONFIRMED)
        return see_other(step_url("checkout.card", price))
    try:
        subscription = subscriptions.subscribe(current_user.id, price.id, form.setup_intent_id.data)
    except AlreadySubscribed as exc:
        flash(str(exc), "info")
        return see_other(url_for("account.dashboard"))
    except BillingError as exc:
        failed_on_card_page(exc)
        return see_other(step_url("checkout.card", price))
    deliver_pending()
    return after_subscribe(subscription, price)


def after_subscribe(subscription: Subscription, price: Price) -> Response:
    """Active: confirmation. Declined: the card step again. 3-D Secure: the bank's dialog."""
    if subscription.has_ended:
        show_on_card_page(DECLINED)
        return see_other(step_url("checkout.card", price))
    waiting = awaiting_authentication(subscription.id)
    if waiting is not None:
        return see_other(url_for("checkout.authenticate", payment_id=waiting.id))
    return see_other(url_for("checkout.done"))


@bp.get("/done")
@login_required
def done() -> Response | str:
    """The confirmation page: plan, amount paid, invoice number and renewal date (or "confirming")."""
    subscription = subscriptions.live_subscription(current_user.id)
    if subscription is None:
        return see_other(url_for("account.dashboard"))
    return render_template(
        "checkout/done.html",
        subscription=subscription,
        invoice=first_invoice(subscription),
        waiting=awaiting_authentication(subscription.id),
    )


# --- 3-D Secure --------------------------------------------------------------------------------


@bp.get("/authenticate/<int:payment_id>")
@login_required
def authenticate(payment_id: int) -> Response:
    """Ask the bank to confirm one of the customer's payments (3-D Secure), right away."""
    payment = own_payment(current_user.id, payment_id)
    if payment is None:
        abort(404)
    if payment.status != PaymentStatus.REQUIRES_ACTION:
        return see_other(url_for("account.dashboard"))
    if needs_confirming_on_session(payment):  # a renewal held by the bank: one click confirms it here
        return authentication_page(payment, autostart=False, card=subscriptions.card_of(payment))
    return authentication_page(payment, autostart=True)


@bp.post("/authenticate/<int:payment_id>/confirm")
@login_required
def confirm_waiting(payment_id: int) -> Response:
    """Confirm a renewal the bank held, with the saved card (nothing to type again); the page
    then opens the bank's dialog, or the payment went through at once, or was declined."""
    if not AuthenticationForm().validate_on_submit():
        abort(404)
    try:
        payment = subscriptions.confirm_waiting_payment(current_user.id, payment_id)
    except LookupError:
        abort(404)
    deliver_pending()
    if payment.status == PaymentStatus.REQUIRES_ACTION and not needs_confirming_on_session(payment):
        return see_other(url_for("checkout.authenticate", payment_id=payment.id))
    return after_authentication(payment)


@bp.post("/complete")
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
        return see_other(url_for("checkout.done"))
    if payment.status == PaymentStatus.SUCCEEDED:
        thank_you([payment])
    else:
        flash("We're confirming your payment with your bank and will email you a receipt.", "info")
    return see_other(url_for("account.dashboard"))
