"""The card renewals are charged to, and "update card and pay now" (the link in dunning emails)."""

from __future__ import annotations

from flask import Response, flash, url_for
from flask_login import current_user, login_required

from dicomportal.billing import collection, declines, subscriptions
from dicomportal.billing.errors import BillingError
from dicomportal.billing.money import format_money
from dicomportal.billing.summary import amount_due_cents
from dicomportal.mail import deliver_pending
from dicomportal.models import Payment, PaymentStatus
from dicomportal.views.billing import bp
from dicomportal.views.forms.billing import CardSetupForm
from dicomportal.views.payments import (
    NOT_CONFIRMED,
    card_page,
    failed_on_card_page,
    see_other,
    show_on_card_page,
    thank_you,
)

# --- update card and pay now (the link in dunning emails) --------------------------------------


@bp.get("/card")
@login_required
def card() -> Response:
    """The card renewals are charged to: replace it, and pay any open invoice with it now."""
    return card_page(
        "billing/card.html",
        amount_due_cents=amount_due_cents(current_user.id),
        current_card=collection.default_card(current_user.id),
    )


@bp.post("/card")
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
            url_for("checkout.authenticate", payment_id=by_status[PaymentStatus.REQUIRES_ACTION].id)
        )
    if PaymentStatus.FAILED in by_status:
        failed = by_status[PaymentStatus.FAILED]
        amount = format_money(failed.amount_cents, failed.currency)
        reason = declines.reason_for(failed)
        show_on_card_page(f"Your card was saved, but the payment of {amount} did not go through: {reason}")
        return see_other(url_for("billing.card"))
    if PaymentStatus.SUCCEEDED in by_status:
        thank_you(payments)
    elif payments:
        flash("Your card was updated. We're confirming your payment and will email you a receipt.", "info")
    else:
        flash("Your card was updated.", "success")
    return see_other(url_for("account.dashboard"))
