"""Subscribing, 3-D Secure, the account dashboard and "update card and pay now", through the pages.

Stripe.js's part (confirming a SetupIntent with the card number, the bank's 3-D Secure dialog) is
played by tests/billing/conftest.py against localstripe; our server only ever gets Stripe ids.
"""

from __future__ import annotations

import html
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from babel.dates import format_date
from dateutil.relativedelta import relativedelta
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dicomportal import jobs
from dicomportal.accounts import create_user, start_session
from dicomportal.billing import cards, subscriptions
from dicomportal.billing.invoicing import invoices_for
from dicomportal.devtools.stripe_server import free_port
from dicomportal.extensions import db
from dicomportal.models import (
    BillingProfile,
    InvoiceStatus,
    Payment,
    PaymentStatus,
    Subscription,
    SubscriptionStatus,
    User,
)
from tests.helpers.auth import AuthActions
from tests.helpers.mail import SmtpSink
from tests.helpers.stripe import (
    DECLINED_AT_CHARGE,
    GOOD_CARD,
    THREE_D_SECURE,
    authenticate_payment,
    confirm_card_setup,
    intents_of,
    price_id,
    stripe_client,
)

STEP_ONE = "/checkout/professional?interval=month"
CARD_STEP = "/checkout/professional/card?interval=month"
CONFIRM = "/checkout/professional/confirm?interval=month"
DETAILS = {
    "name": "Pat Lee",
    "company": "Lee Physio",
    "address_line1": "1 Main St",
    "city": "Springfield",
    "state": "IL",
    "postal_code": "62701",
    "country": "US",
}
START = datetime(2026, 1, 15, 10, 0, tzinfo=UTC)


def page_text(response: Any) -> str:
    """What a reader sees: tags dropped, entities decoded, whitespace collapsed."""
    markup = response.get_data(as_text=True)
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", markup)).split())


def long_date(moment: datetime) -> str:
    return format_date(moment.astimezone(UTC).date(), "long", locale="en")


def customer(email: str = "pat@example.com") -> User:
    db.session.expire_all()
    found = db.session.scalar(select(User).where(User.email == email))
    assert found is not None
    return found


def sign_up_with_details(auth: AuthActions, email: str = "pat@example.com") -> User:
    """A new customer who has filled in step 1 (billing details)."""
    assert auth.signup(email=email).status_code == 303
    assert auth.client.post(STEP_ONE, data=DETAILS).status_code == 303
    return customer(email)


def other_customer(email: str = "other@example.com") -> User:
    user = create_user(email, "correct horse battery", "Olive Other")
    user.billing_profile = BillingProfile(
        name="Olive Other", address_line1="2 High St", city="Leeds", postal_code="LS1 1AA", country="GB"
    )
    db.session.commit()
    return user


def confirm_with(app: Flask, client: FlaskClient, user: User, number: str = GOOD_CARD) -> Any:
    """Stripe.js confirms the card, then the browser posts the SetupIntent id (step 2)."""
    return client.post(CONFIRM, data={"setup_intent_id": confirm_card_setup(app, user, number)})


def subscription_count() -> int:
    return db.session.scalar(select(func.count()).select_from(Subscription)) or 0


# --- step 1: billing details ---------------------------------------------------------------------


def test_billing_details_are_saved_and_lead_to_the_card_step(client: FlaskClient, auth: AuthActions) -> None:
    auth.signup()
    page = client.get(STEP_ONE)
    assert page.status_code == 200
    text = page_text(page)
    assert "Professional" in text and "$29 per month" in text
    assert "renews automatically on" in text.lower() and "cancel any time" in text
    assert '<option value="DE">Germany</option>' in page.get_data(as_text=True)

    response = client.post(STEP_ONE, data=DETAILS)

    assert response.status_code == 303
    assert response.headers["Location"] == CARD_STEP
    profile = customer().billing_profile
    assert profile is not None
    assert (profile.name, profile.company, profile.city, profile.postal_code, profile.country) == (
        "Pat Lee",
        "Lee Physio",
        "Springfield",
        "62701",
        "US",
    )
    assert profile.address_line2 is None and profile.tax_id is None


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        ({"city": ""}, "city", "Enter your city or town."),
        ({"country": "XX"}, "country", "Choose your country from the list."),
        ({"country": "DE", "tax_id": "DE123"}, "tax_id", "Enter a valid EU VAT number"),
    ],
)
def test_invalid_billing_details_are_explained_and_nothing_is_saved(
    client: FlaskClient, auth: AuthActions, changes: dict[str, str], field: str, message: str
) -> None:
    auth.signup()

    response = client.post(STEP_ONE, data=DETAILS | changes)

    assert response.status_code == 422
    assert message in page_text(response)
    markup = response.get_data(as_text=True)
    assert re.search(rf'id="{field}"[^>]*aria-describedby="[^"]*{field}-error', markup) or re.search(
        rf'aria-describedby="[^"]*{field}-error"[^>]*id="{field}"', markup
    )
    assert f'id="{field}-error"' in markup and 'aria-invalid="true"' in markup
    assert customer().billing_profile is None


def test_an_eu_vat_number_is_stored_in_its_standard_form(client: FlaskClient, auth: AuthActions) -> None:
    auth.signup()
    details = DETAILS | {"country": "DE", "postal_code": "10115", "tax_id": "136 695 976"}

    assert client.post(STEP_ONE, data=details).status_code == 303

    profile = customer().billing_profile
    assert profile is not None
    assert (profile.tax_id, profile.tax_id_type) == ("DE136695976", "eu_vat")


# --- step 2: the card ----------------------------------------------------------------------------


def test_card_step_loads_stripe_js_from_localstripe_with_a_setup_intent_of_this_customer(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user = sign_up_with_details(auth)

    page = client.get(CARD_STEP)

    assert page.status_code == 200
    markup = page.get_data(as_text=True)
    assert f'<script src="{app.config["STRIPE_API_BASE"]}/js.stripe.com/v3/"></script>' in markup
    assert re.search(r'<script src="/static/js/card\.[0-9a-f]{12}\.js" defer></script>', markup)
    secret = re.search(r'data-client-secret="(seti_\w+?)_secret_\w+"', markup)
    assert secret, markup
    intent = stripe_client(app).v1.setup_intents.retrieve(secret.group(1))
    assert intent.customer == customer().stripe_customer_id == user.stripe_customer_id
    assert 'data-publishable-key="pk_test_dicomportal"' in markup
    assert "Pay $29 and subscribe" in page_text(page)
    assert page.headers["Cache-Control"] == "no-store"
    assert not re.search(r"<script(?![^>]*\bsrc=)", markup), "inline script"
    assert " style=" not in markup


def test_card_step_without_billing_details_goes_back_to_step_one(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup()
    response = client.get(CARD_STEP)
    assert response.status_code == 303
    assert response.headers["Location"] == STEP_ONE


@pytest.mark.parametrize("path", ["/checkout/nope?interval=month", "/checkout/professional?interval=week"])
def test_an_unknown_plan_or_interval_is_not_found(client: FlaskClient, auth: AuthActions, path: str) -> None:
    auth.signup()
    assert client.get(path).status_code == 404


@pytest.mark.parametrize("path", [STEP_ONE, CARD_STEP, "/checkout/done", "/billing/card", "/account/"])
def test_billing_pages_ask_visitors_to_log_in(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/auth/login")


# --- confirm: subscribing ------------------------------------------------------------------------


def test_subscribing_with_a_confirmed_card_activates_and_the_dashboard_shows_it(
    app: Flask, client: FlaskClient, auth: AuthActions, smtp: SmtpSink
) -> None:
    user = sign_up_with_details(auth)

    response = confirm_with(app, client, user)

    assert response.status_code == 303
    assert response.headers["Location"] == "/checkout/done"
    subscription = subscriptions.live_subscription(user.id)
    assert subscription is not None and subscription.status == SubscriptionStatus.ACTIVE
    (invoice,) = invoices_for(user.id)
    renews_on = long_date(subscription.current_period_end)
    done = page_text(client.get("/checkout/done"))
    assert "You're subscribed to Professional" in done
    assert "Amount paid $29" in done and f"Invoice {invoice.number}" in done
    assert f"Renews on {renews_on}" in done
    assert "Welcome to DICOM Portal Professional" in smtp.last_to(user.email)["Subject"]

    dashboard = page_text(client.get("/account/"))
    assert "Professional Active" in dashboard
    assert "$29 per month" in dashboard
    assert f"Renews on {renews_on}" in dashboard
    assert f"Next charge $29 on {renews_on}" in dashboard
    assert "Visa ending in 4242" in dashboard and "Expires 12/2035" in dashboard
    assert f"{invoice.number} {long_date(invoice.finalized_at)} $29 Paid" in dashboard
    assert "Compare plans" not in dashboard
    assert "50 GB cloud storage, 100 processing credits a month, viewing and uploading studies" in dashboard


def test_a_double_submitted_confirm_subscribes_and_charges_once(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user = sign_up_with_details(auth)
    setup_id = confirm_card_setup(app, user, GOOD_CARD)

    first = client.post(CONFIRM, data={"setup_intent_id": setup_id})
    second = client.post(CONFIRM, data={"setup_intent_id": setup_id})

    assert first.headers["Location"] == "/checkout/done"
    assert second.status_code == 303 and second.headers["Location"] == "/account/"
    assert "You already have the Professional plan" in page_text(client.get("/account/"))
    assert subscription_count() == 1
    assert [(i.status, i.amount) for i in intents_of(app, user)] == [("succeeded", 2900)]


def test_two_confirm_posts_at_the_same_moment_make_one_subscription_and_one_charge(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user = sign_up_with_details(auth)
    setup_id = confirm_card_setup(app, user, GOOD_CARD)
    barrier, answers = threading.Barrier(2), []

    def post() -> None:
        with app.app_context():
            barrier.wait()
            answers.append(client.post(CONFIRM, data={"setup_intent_id": setup_id}).headers["Location"])
            db.session.remove()

    threads = [threading.Thread(target=post) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)

    assert sorted(answers) == ["/account/", "/checkout/done"]
    assert subscription_count() == 1
    assert [(i.status, i.amount) for i in intents_of(app, user)] == [("succeeded", 2900)]


def test_a_setup_intent_of_another_customer_is_refused(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user = sign_up_with_details(auth)
    client.get(CARD_STEP)  # the customer exists at Stripe too
    someone_elses = confirm_card_setup(app, other_customer(), GOOD_CARD)

    response = client.post(CONFIRM, data={"setup_intent_id": someone_elses})

    assert response.status_code == 303 and response.headers["Location"] == CARD_STEP
    assert "Your card was not confirmed" in page_text(client.get(CARD_STEP))
    assert subscription_count() == 0
    assert intents_of(app, customer(user.email)) == []


def test_a_card_declined_at_the_first_charge_says_so_and_gives_no_subscription(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user = sign_up_with_details(auth)

    response = confirm_with(app, client, user, DECLINED_AT_CHARGE)

    assert response.status_code == 303 and response.headers["Location"] == CARD_STEP
    card_step = client.get(CARD_STEP)
    assert "Your card was declined. Nothing was charged." in page_text(card_step)
    assert "Your card was declined" not in page_text(client.get(CARD_STEP))  # said once, not forever
    assert subscriptions.live_subscription(user.id) is None
    (invoice,) = invoices_for(user.id)
    assert invoice.status == InvoiceStatus.VOID and invoice.amount_paid_cents == 0
    assert "Compare plans" in page_text(client.get("/account/"))

    assert confirm_with(app, client, user, GOOD_CARD).headers["Location"] == "/checkout/done"  # another card


def test_a_setup_intent_id_that_is_not_one_is_refused_without_calling_stripe(
    client: FlaskClient, auth: AuthActions
) -> None:
    sign_up_with_details(auth)
    response = client.post(CONFIRM, data={"setup_intent_id": "4242424242424242"})
    assert response.headers["Location"] == CARD_STEP
    assert "We could not confirm your card" in page_text(client.get(CARD_STEP))
    assert subscription_count() == 0


@pytest.fixture
def stripe_down(app_config: dict[str, Any]) -> None:
    app_config["STRIPE_API_BASE"] = f"http://127.0.0.1:{free_port()}"  # nothing listens there


def test_card_step_when_stripe_is_unreachable_says_nothing_was_charged(
    stripe_down: None, client: FlaskClient, auth: AuthActions
) -> None:
    sign_up_with_details(auth)

    response = client.get(CARD_STEP)

    assert response.status_code == 503
    assert "We couldn't reach our payment service. Nothing was charged." in page_text(response)


@pytest.fixture
def csrf_enabled(app_config: dict[str, Any]) -> None:
    app_config["WTF_CSRF_ENABLED"] = True


def test_confirm_without_the_csrf_token_is_refused(
    csrf_enabled: None, app: Flask, client: FlaskClient
) -> None:
    user = create_user("pat@example.com", "correct horse battery", "Pat Lee")
    user.billing_profile = BillingProfile(**DETAILS)
    start_session(user)  # logged in without the login form
    db.session.commit()
    with client.session_transaction() as session:
        session["_user_id"], session["_fresh"] = user.get_id(), True

    response = client.post(CONFIRM, data={"setup_intent_id": confirm_card_setup(app, user, GOOD_CARD)})

    assert response.status_code == 400
    assert subscription_count() == 0


# --- 3-D Secure ----------------------------------------------------------------------------------


def waiting_payment(user: User) -> Payment:
    (payment,) = invoices_for(user.id)[0].payments
    assert payment.status == PaymentStatus.REQUIRES_ACTION
    return payment


def test_three_d_secure_at_subscribe_asks_the_bank_then_activates(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user = sign_up_with_details(auth)

    response = confirm_with(app, client, user, THREE_D_SECURE)

    payment = waiting_payment(user)
    assert response.headers["Location"] == f"/checkout/authenticate/{payment.id}"
    page = client.get(response.headers["Location"])
    assert f'data-client-secret="{payment.client_secret}"' in page.get_data(as_text=True)
    assert 'data-autostart="true"' in page.get_data(as_text=True)
    assert "Awaiting payment confirmation" in page_text(client.get("/account/"))
    assert client.get(STEP_ONE).headers["Location"] == response.headers["Location"]  # finish, not restart

    authenticate_payment(app, payment.stripe_payment_intent_id, payment.client_secret, success=True)
    done = client.post("/checkout/complete", data={"payment_id": str(payment.id)})

    assert done.headers["Location"] == "/checkout/done"
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
    assert "You're subscribed to Professional" in page_text(client.get("/checkout/done"))


def test_failed_three_d_secure_says_so_and_leaves_no_subscription(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user = sign_up_with_details(auth)
    confirm_with(app, client, user, THREE_D_SECURE)
    payment = waiting_payment(user)

    authenticate_payment(app, payment.stripe_payment_intent_id, payment.client_secret, success=False)
    response = client.post("/checkout/complete", data={"payment_id": str(payment.id)})

    assert response.status_code == 200
    text = page_text(response)
    assert "Authentication failed. You have not been charged and your subscription is not active." in text
    assert f'href="{CARD_STEP.replace("&", "&amp;")}"' in response.get_data(as_text=True)  # try again
    assert subscriptions.live_subscription(user.id) is None
    assert "Compare plans" in page_text(client.get("/account/"))


def test_someone_elses_payment_is_not_found(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    other = other_customer()
    subscriptions.subscribe(other.id, price_id("md"), confirm_card_setup(app, other, THREE_D_SECURE))
    payment = waiting_payment(other)
    auth.signup()

    assert client.post("/checkout/complete", data={"payment_id": str(payment.id)}).status_code == 404
    assert client.get(f"/checkout/authenticate/{payment.id}").status_code == 404
    assert client.post("/checkout/complete", data={"payment_id": "999999"}).status_code == 404
    db.session.refresh(payment)
    assert payment.status == PaymentStatus.REQUIRES_ACTION


# --- the dashboard -------------------------------------------------------------------------------


def test_dashboard_without_a_subscription_offers_to_compare_plans(
    client: FlaskClient, auth: AuthActions
) -> None:
    auth.signup()

    response = client.get("/account/")

    assert response.status_code == 200
    text = page_text(response)
    assert "You have no subscription yet" in text and "Compare plans" in text
    assert "No card on file" in text and "No invoices yet" in text
    markup = response.get_data(as_text=True)
    for partial in ("current-plan", "card", "invoices"):
        assert f'id="{partial}"' in markup


def test_dashboard_lists_the_five_latest_invoices(app: Flask, client: FlaskClient, auth: AuthActions) -> None:
    with time_machine.travel(START, tick=False):
        user = sign_up_with_details(auth)
        confirm_with(app, client, user)
    for month in range(1, 7):
        with time_machine.travel(START + relativedelta(months=month) + timedelta(hours=1), tick=False):
            jobs.run_once()

    auth.login(email=user.email)  # months later: the first session has expired
    markup = client.get("/account/").get_data(as_text=True)

    invoices = sorted(invoices_for(user.id), key=lambda i: i.id)
    assert len(invoices) == 7
    shown = re.findall(r'<th scope="row" class="inv-number"><a [^>]*>(DP-[\d-]+)</a></th>', markup)
    assert shown == [i.number for i in reversed(invoices)][:5]


# --- update card and pay now ---------------------------------------------------------------------


def past_due_customer(app: Flask, client: FlaskClient, auth: AuthActions) -> tuple[User, datetime]:
    """Subscribed on START, then the card on file is declined at the first renewal."""
    with time_machine.travel(START, tick=False):
        user = sign_up_with_details(auth)
        confirm_with(app, client, user)
        declining = cards.verified_setup(user, confirm_card_setup(app, user, DECLINED_AT_CHARGE))
        cards.save_default_card(user, declining.payment_method or "")
        db.session.commit()
    renewal_at = START + relativedelta(months=1) + timedelta(hours=1)
    with time_machine.travel(renewal_at, tick=False):
        jobs.run_once()
        auth.login(email=user.email)  # a month on, the first session has expired
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.PAST_DUE
    return customer(user.email), renewal_at


def test_past_due_customer_updates_the_card_and_pays_now(
    app: Flask, client: FlaskClient, auth: AuthActions, smtp: SmtpSink
) -> None:
    user, renewal_at = past_due_customer(app, client, auth)
    assert "http://localhost/billing/card" in SmtpSink.text(smtp.last_to(user.email))

    with time_machine.travel(renewal_at + timedelta(hours=2), tick=False):
        dashboard = client.get("/account/")
        text = page_text(dashboard)
        assert "Payment past due" in text
        assert "Your last payment failed." in text and "Update your card and pay now" in text
        assert 'href="/billing/card"' in dashboard.get_data(as_text=True)
        card_page = page_text(client.get("/billing/card"))
        assert "You have $29 to pay" in card_page and "Save card and pay $29" in card_page

        response = client.post(
            "/billing/card", data={"setup_intent_id": confirm_card_setup(app, user, GOOD_CARD)}
        )

        assert response.status_code == 303 and response.headers["Location"] == "/account/"
        text = page_text(client.get("/account/"))
    assert "Thank you! Your payment of $29 went through and your subscription is active again." in text
    assert "Professional Active" in text and "Your last payment failed" not in text
    assert all(i.status == InvoiceStatus.PAID for i in invoices_for(user.id))
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE


def test_a_new_card_that_is_declined_too_is_explained_on_the_card_page(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user, renewal_at = past_due_customer(app, client, auth)

    with time_machine.travel(renewal_at + timedelta(hours=2), tick=False):
        setup_id = confirm_card_setup(app, user, DECLINED_AT_CHARGE)
        response = client.post("/billing/card", data={"setup_intent_id": setup_id})
        page = page_text(client.get("/billing/card"))

    assert response.headers["Location"] == "/billing/card"
    assert "Your card was saved, but the payment of $29 did not go through" in page
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.PAST_DUE


def test_changing_the_card_with_nothing_due_only_updates_it(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user = sign_up_with_details(auth)
    confirm_with(app, client, user)

    response = client.post(
        "/billing/card", data={"setup_intent_id": confirm_card_setup(app, user, "4000056655665556")}
    )

    assert response.headers["Location"] == "/account/"
    text = page_text(client.get("/account/"))
    assert "Your card was updated." in text
    assert "Visa ending in 5556" in text and "4242" not in text
    assert len(intents_of(app, user)) == 1  # nothing charged


def test_three_d_secure_when_paying_an_open_invoice_returns_to_the_dashboard(
    app: Flask, client: FlaskClient, auth: AuthActions
) -> None:
    user, renewal_at = past_due_customer(app, client, auth)

    with time_machine.travel(renewal_at + timedelta(hours=2), tick=False):
        response = client.post(
            "/billing/card", data={"setup_intent_id": confirm_card_setup(app, user, THREE_D_SECURE)}
        )
        payment = db.session.scalars(
            select(Payment).where(Payment.status == PaymentStatus.REQUIRES_ACTION)
        ).one()
        assert response.headers["Location"] == f"/checkout/authenticate/{payment.id}"
        authenticate_payment(app, payment.stripe_payment_intent_id, payment.client_secret, success=True)
        done = client.post("/checkout/complete", data={"payment_id": str(payment.id)})
        text = page_text(client.get("/account/"))

    assert done.headers["Location"] == "/account/"
    assert "Thank you! Your payment of $29 went through and your subscription is active again." in text
    assert subscriptions.live_subscription(user.id).status == SubscriptionStatus.ACTIVE
