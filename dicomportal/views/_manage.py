"""What every "manage your subscription" action answers (plans and cancellation blueprints):
htmx gets the message in place plus the dashboard's plan sections swapped out of band; a plain
form post gets a flash and a 303 to the dashboard (or back to the page it came from on error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from flask import Response, abort, flash, make_response, render_template, url_for
from flask_login import current_user

from dicomportal.billing.changes import Quote
from dicomportal.billing.errors import BillingError
from dicomportal.billing.money import format_day, format_money
from dicomportal.billing.summary import account_summary
from dicomportal.mail import commit_and_deliver
from dicomportal.models import PaymentStatus
from dicomportal.views._htmx import redirect_after_post, wants_partial

T = TypeVar("T")


def answer(message: str, error: bool = False, back_to: str | None = None) -> Response:
    """The result of an action, as an htmx fragment or a redirect with a flash."""
    if wants_partial():
        body = render_template(
            "account/_updated.html", message=message, error=error, summary=account_summary(current_user)
        )
        return make_response(body, 422 if error else 200)
    flash(message, "error" if error else "success")
    location = back_to if error and back_to else url_for("account.dashboard")
    return redirect_after_post(location)


def act(action: Callable[[], T], message: str | Callable[[T], str], back_to: str | None = None) -> Response:
    """Run one service call; its domain error is the message, another customer's id a 404."""
    try:
        result = action()
    except LookupError:
        abort(404)
    except BillingError as exc:
        return answer(str(exc), error=True, back_to=back_to)
    commit_and_deliver()
    return answer(message if isinstance(message, str) else message(result))


def changed_message(quote: Quote) -> str:
    """What a confirmed plan change did, in the customer's words (including how the charge went)."""
    plan = quote.target.plan.name
    every = "yearly" if quote.target.interval.value == "year" else "monthly"
    if not quote.effective_now:
        return f"Your plan changes to {plan}, billed {every}, on {format_day(quote.effective_on)}."
    done = f"You're now on {plan}, billed {every}."
    amount = format_money(quote.charge.total_cents)
    if quote.payment_status == PaymentStatus.SUCCEEDED:
        return f"{done} We charged {amount}."
    if quote.payment_status == PaymentStatus.FAILED:
        return f"{done} Your card was declined for {amount}: update your card and we'll try again."
    if quote.payment_status == PaymentStatus.REQUIRES_ACTION:
        return f"{done} Your bank needs you to confirm the payment of {amount}: see your account page."
    if quote.charge.total_cents <= 0:
        return done
    return f"{done} We're collecting {amount} from your card and will email you a receipt."
