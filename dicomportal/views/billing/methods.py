"""Payment methods: the saved cards, which one renewals are charged to, adding and removing cards."""

from __future__ import annotations

import json
from collections.abc import Callable

from flask import Response, abort, flash, make_response, render_template, url_for
from flask_login import current_user, login_required

from dicomportal.billing import payment_methods
from dicomportal.billing.errors import BillingError
from dicomportal.billing.payment_methods import CardRefused
from dicomportal.models import PaymentMethod
from dicomportal.views._htmx import wants_partial
from dicomportal.views.billing import bp
from dicomportal.views.forms.billing import CardSetupForm
from dicomportal.views.payments import (
    NOT_CONFIRMED,
    card_page,
    failed_on_card_page,
    see_other,
    show_on_card_page,
)


@bp.get("/payment-methods")
@login_required
def methods() -> Response:
    """The saved cards with their actions, and the form to add one (Stripe.js)."""
    return card_page("billing/payment_methods.html", wallet=payment_methods.wallet(current_user.id))


@bp.post("/payment-methods")
@login_required
def add_method() -> Response:
    """Save the card Stripe.js confirmed; it becomes the default only if there was none."""
    form = CardSetupForm()
    if not form.validate_on_submit():
        show_on_card_page(NOT_CONFIRMED)
        return see_other(url_for("billing.methods"))
    try:
        card = payment_methods.add_card(current_user, form.setup_intent_id.data)
    except BillingError as exc:
        failed_on_card_page(exc)
        return see_other(url_for("billing.methods"))
    flash(f"Your card ending in {card.last4} was added.", "success")
    return see_other(url_for("billing.methods"))


@bp.post("/payment-methods/<int:card_id>/default")
@login_required
def make_default(card_id: int) -> Response:
    """Charge renewals to this card from now on."""
    return _changed(card_id, payment_methods.make_default, "is now your default card")


@bp.post("/payment-methods/<int:card_id>/remove")
@login_required
def remove_method(card_id: int) -> Response:
    """Remove a card (never the last one while a subscription is live)."""
    return _changed(card_id, payment_methods.remove_card, "was removed")


def _changed(card_id: int, change: Callable[..., PaymentMethod], done: str) -> Response:
    """Run the change; answer htmx with the updated list and a toast, a plain form with a redirect."""
    if payment_methods.own_card(current_user.id, card_id) is None:
        abort(404)
    try:
        card = change(current_user, card_id)
        message, category = f"Your card ending in {card.last4} {done}.", "success"
    except CardRefused as exc:
        message, category = str(exc), "error"
    if not wants_partial():
        flash(message, category)
        return see_other(url_for("billing.methods"))
    body = render_template("billing/_payment_methods.html", wallet=payment_methods.wallet(current_user.id))
    response = make_response(body)
    response.headers["HX-Trigger"] = json.dumps({"toast": {"message": message, "category": category}})
    return response
