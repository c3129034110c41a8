"""Disputes and early fraud warnings: signed events re-read from Stripe, one effect and one staff email
per change, the invoice marked Disputed, refunds refused meanwhile, lost money recorded, won restored."""

from __future__ import annotations

import copy
import json
import time
import urllib.parse
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import stripe
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select

from dicomportal import clock
from dicomportal.accounts import create_user
from dicomportal.billing import refunds, subscriptions
from dicomportal.billing.money import format_money
from dicomportal.billing.refunds import ChargeDisputed
from dicomportal.devtools.stripe_server import LocalStripe
from dicomportal.extensions import db
from dicomportal.mail import jobs as mail_jobs
from dicomportal.models import (
    AuditLog,
    CreditNote,
    CreditNoteStatus,
    Dispute,
    EarlyFraudWarning,
    Invoice,
    InvoiceStatus,
    Role,
    StripeEvent,
    Subscription,
    SubscriptionStatus,
    User,
)
from tests.billing.test_webhooks import deliver
from tests.helpers.auth import AuthActions
from tests.helpers.environment import WEBHOOK_SECRET
from tests.helpers.mail import SmtpSink
from tests.helpers.pdf import pdf_text
from tests.helpers.stripe import intent_of, paid_invoice, stripe_client
from tests.helpers.webhooks import localstripe_config

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "stripe_fixtures3.json"
SUPPORT = "support@localhost"  # SUPPORT_EMAIL's default
DISPUTE_FEE = 1500  # what localstripe's disputes carry in their balance transactions, as Stripe's do


# --- helpers --------------------------------------------------------------------------------------


def at_stripe(app: Flask, path: str, **data: Any) -> dict[str, Any]:
    """localstripe's test-only routes: what the card networks do (open, decide a dispute)."""
    return localstripe_config(app, path.removeprefix("/_config/"), **data)


def open_dispute(app: Flask, invoice: Invoice, reason: str = "fraudulent", **more: Any) -> dict[str, Any]:
    return at_stripe(app, "/_config/disputes", payment_intent=intent_of(invoice), reason=reason, **more)


def stripe_event(event_type: str, obj: dict[str, Any], event_id: str) -> bytes:
    """A signed-ready event in today's API shape (Stripe's own example event and object)."""
    resources = json.loads(FIXTURES.read_text())["resources"]
    body = copy.deepcopy(resources["event"])
    body |= {"id": event_id, "type": event_type, "api_version": "2026-10-28"}
    body["data"] = {"object": obj, "previous_attributes": {}}
    return json.dumps(body).encode()


def dispute_event(event_type: str, dispute: dict[str, Any], event_id: str, **claims: Any) -> bytes:
    """Stripe's example dispute around our dispute's id; ``claims`` are what the event says (stale
    or not), which the handler must not trust."""
    obj = copy.deepcopy(json.loads(FIXTURES.read_text())["resources"]["dispute"])
    obj |= {k: dispute[k] for k in ("id", "charge", "payment_intent", "amount", "currency", "status")}
    obj |= claims
    return stripe_event(event_type, obj, event_id)


def warning_event(event_type: str, warning: dict[str, Any], event_id: str) -> bytes:
    obj = copy.deepcopy(json.loads(FIXTURES.read_text())["resources"]["radar.early_fraud_warning"])
    obj |= {"id": warning["id"], "charge": warning["charge"], "payment_intent": warning["payment_intent"]}
    return stripe_event(event_type, obj, event_id)


def support_mail(smtp: SmtpSink) -> list[str]:
    mail_jobs.deliver_mail()
    return [str(m["Subject"]).strip() for m in smtp.to(SUPPORT)]  # a long subject is folded


def invoices_page(client: FlaskClient, user: User) -> str:
    AuthActions(client).login(user.email)
    return client.get("/billing/invoices").get_data(as_text=True)


def stripe_refunds(app: Flask, invoice: Invoice) -> list[Any]:
    listed = stripe_client(app).v1.refunds.list(params={"payment_intent": intent_of(invoice), "limit": 100})
    return list(listed.auto_paging_iter())


def staff(email: str = "sam@example.com") -> User:
    user = create_user(email, "correct horse battery", "Sam Support", Role.SUPPORT)
    db.session.commit()
    return user


# --- disputes ---------------------------------------------------------------------------------------


def test_a_dispute_marks_the_invoice_disputed_tells_support_and_refuses_refunds(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    dispute = open_dispute(app, invoice, "product_not_received")

    assert deliver(client, dispute_event("charge.dispute.created", dispute, "evt_dp_1")) == 200
    assert deliver(client, dispute_event("charge.dispute.funds_withdrawn", dispute, "evt_dp_2")) == 200

    db.session.refresh(invoice)
    assert invoice.is_disputed
    page = invoices_page(client, invoice.user)
    assert "Disputed" in page and "Your bank has disputed this payment" in page and SUPPORT in page
    dashboard = client.get("/account/").get_data(as_text=True)
    assert "Disputed" in dashboard and "Your bank has disputed this payment" in dashboard
    amount = format_money(invoice.total_cents, invoice.currency)
    assert support_mail(smtp) == [
        f"Dispute needs a response: {amount} on invoice {invoice.number} (product_not_received)"
    ]
    body = SmtpSink.text(smtp.last_to(SUPPORT))
    assert invoice.user.email in body and dispute["id"] in body and "Evidence due by" in body

    with pytest.raises(ChargeDisputed, match="under dispute"):
        refunds.refund_invoice(invoice.id, None, "Customer asked")
    assert stripe_refunds(app, invoice) == []
    assert db.session.scalar(select(func.count()).select_from(CreditNote)) == 0
    # Service continues while the bank decides.
    assert subscriptions.live_subscription(invoice.user_id).status == SubscriptionStatus.ACTIVE
    audited = db.session.scalars(select(AuditLog.action).where(AuditLog.action.like("dispute.%"))).all()
    assert audited == ["dispute.needs_response"]


def test_a_lost_dispute_is_recorded_as_money_lost_and_shown_on_the_invoice(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    dispute = open_dispute(app, invoice)
    assert deliver(client, dispute_event("charge.dispute.created", dispute, "evt_dp_1")) == 200

    at_stripe(app, f"/_config/disputes/{dispute['id']}", status="lost")
    assert deliver(client, dispute_event("charge.dispute.closed", dispute, "evt_dp_2", status="lost")) == 200

    db.session.refresh(invoice)
    lost = invoice.total_cents + DISPUTE_FEE
    assert not invoice.is_disputed and invoice.has_lost_dispute and invoice.amount_lost_cents == lost
    page = invoices_page(client, invoice.user)
    assert "Charged back" in page and "Your bank took this payment back" in page
    assert f"{format_money(lost, invoice.currency)} of this invoice is unpaid" in page
    subjects = support_mail(smtp)
    assert len(subjects) == 2 and subjects[1].startswith("Dispute lost: ") and invoice.number in subjects[1]
    assert "NOT ended" in SmtpSink.text(smtp.last_to(SUPPORT))
    # Staff decide about the subscription; nothing ends it automatically.
    assert subscriptions.live_subscription(invoice.user_id).status == SubscriptionStatus.ACTIVE
    with pytest.raises(ChargeDisputed, match="charged back"):
        refunds.refund_invoice(invoice.id, None, "Customer asked")
    row = db.session.scalar(select(Dispute))
    assert row is not None and row.closed_at is not None and row.fee_cents == DISPUTE_FEE


def test_a_won_dispute_restores_the_invoice(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    dispute = open_dispute(app, invoice)
    assert deliver(client, dispute_event("charge.dispute.created", dispute, "evt_dp_1")) == 200

    at_stripe(app, f"/_config/disputes/{dispute['id']}", status="won")
    for number, kind in enumerate(("funds_reinstated", "closed"), start=2):
        assert deliver(client, dispute_event(f"charge.dispute.{kind}", dispute, f"evt_dp_{number}")) == 200

    db.session.refresh(invoice)
    assert not invoice.is_disputed and not invoice.has_lost_dispute and invoice.amount_lost_cents == 0
    page = invoices_page(client, invoice.user)
    assert "Disputed" not in page and "Your bank" not in page
    assert support_mail(smtp)[-1].startswith("Dispute won: ")
    row = db.session.scalar(select(Dispute))
    assert row is not None and row.funds_reinstated_cents == row.funds_withdrawn_cents == invoice.total_cents


def test_an_inquiry_shows_disputed_until_the_bank_closes_it_and_costs_nothing(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    inquiry = open_dispute(app, invoice, "unrecognized", status="warning_needs_response")
    assert deliver(client, dispute_event("charge.dispute.created", inquiry, "evt_inq_1")) == 200
    db.session.refresh(invoice)
    assert invoice.is_disputed and "Disputed" in invoices_page(client, invoice.user)

    at_stripe(app, f"/_config/disputes/{inquiry['id']}", status="lost")  # an inquiry just closes
    assert deliver(client, dispute_event("charge.dispute.closed", inquiry, "evt_inq_2")) == 200

    db.session.refresh(invoice)
    assert not invoice.is_disputed and not invoice.has_lost_dispute and invoice.amount_lost_cents == 0
    assert db.session.scalar(select(Dispute.status)) == "warning_closed"
    assert refunds.refund_invoice(invoice.id, 100, "Goodwill").total_cents == 100


def test_the_same_event_three_times_has_one_effect_and_sends_one_email(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    dispute = open_dispute(app, invoice)
    payload = dispute_event("charge.dispute.created", dispute, "evt_dp_once")
    again = dispute_event("charge.dispute.updated", dispute, "evt_dp_other_id")  # same news, new event

    assert [deliver(client, payload) for _ in range(3)] + [deliver(client, again)] == [200] * 4

    assert db.session.scalar(select(func.count()).select_from(Dispute)) == 1
    assert len(support_mail(smtp)) == 1
    assert db.session.scalar(select(func.count()).where(AuditLog.action.like("dispute.%"))) == 1


def test_events_out_of_order_converge_on_what_stripe_says(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    dispute = open_dispute(app, invoice)
    at_stripe(app, f"/_config/disputes/{dispute['id']}", status="lost")

    closed = dispute_event("charge.dispute.closed", dispute, "evt_3", status="lost")
    created = dispute_event("charge.dispute.created", dispute, "evt_1", status="needs_response")
    withdrawn = dispute_event("charge.dispute.funds_withdrawn", dispute, "evt_2", status="needs_response")
    for payload in (closed, created, withdrawn):
        assert deliver(client, payload) == 200

    db.session.refresh(invoice)
    assert invoice.has_lost_dispute and invoice.amount_lost_cents == invoice.total_cents + DISPUTE_FEE
    subjects = support_mail(smtp)
    assert len(subjects) == 1 and subjects[0].startswith("Dispute lost: ")


def test_a_dispute_stripe_does_not_have_changes_nothing(
    client: FlaskClient, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    """A signed but forged or foreign event is a hint: Stripe is asked, and it knows no such dispute."""
    invoice = paid_invoice(make_customer, subscribe)
    forged = {"id": "dp_forged", "charge": "ch_x", "payment_intent": intent_of(invoice)}
    forged |= {"amount": invoice.total_cents, "currency": "usd", "status": "lost"}

    assert deliver(client, dispute_event("charge.dispute.closed", forged, "evt_forged")) == 200

    db.session.refresh(invoice)
    assert not invoice.has_lost_dispute and db.session.scalar(select(func.count()).select_from(Dispute)) == 0


def test_a_refund_stripe_refuses_as_disputed_before_we_heard_of_it_changes_nothing(
    app: Flask, make_customer: Callable[..., User], subscribe: Callable[..., Subscription]
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    open_dispute(app, invoice)  # its events have not reached us yet

    with pytest.raises(ChargeDisputed, match="disputed"):
        refunds.refund_invoice(invoice.id, None, "Customer asked")

    db.session.refresh(invoice)
    assert invoice.status == InvoiceStatus.PAID and invoice.amount_refunded_cents == 0
    assert db.session.scalar(select(CreditNote.status)) == CreditNoteStatus.FAILED
    assert stripe_refunds(app, invoice) == []


def test_disputes_command_lists_open_disputes_soonest_deadline_first_with_days_left(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    later, sooner, closed = (paid_invoice(make_customer, subscribe) for _ in range(3))
    today = datetime(2030, 3, 1, 9, 0, tzinfo=UTC)
    opened = {}
    for invoice, days, reason in [
        (later, 12, "product_not_received"),
        (sooner, 3, "fraudulent"),
        (closed, 1, "duplicate"),
    ]:
        due = int((today + timedelta(days=days, hours=14)).timestamp())
        opened[invoice.id] = dispute = open_dispute(app, invoice, reason, evidence_due_by=due)
        assert deliver(client, dispute_event("charge.dispute.created", dispute, f"evt_{invoice.id}")) == 200
    at_stripe(app, f"/_config/disputes/{opened[closed.id]['id']}", status="won")
    assert deliver(client, dispute_event("charge.dispute.closed", opened[closed.id], "evt_won")) == 200
    clock.travel_to(today)

    result = runner.invoke(args=["disputes"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "2 open dispute(s), soonest evidence deadline first (today is 2030-03-01):"
    assert [sooner.number in lines[1], later.number in lines[2]] == [True, True]
    amount = format_money(sooner.total_cents, sooner.currency)
    assert f"{amount}  fraudulent  needs_response  {sooner.user.email}  {sooner.number}" in lines[1]
    assert lines[1].endswith("evidence due 2030-03-04 (3 days left)")
    assert lines[2].endswith("evidence due 2030-03-13 (12 days left)") and "product_not_received" in lines[2]
    assert closed.number not in result.output


def test_disputes_command_without_disputes_says_so(runner: Any) -> None:
    result = runner.invoke(args=["disputes"])
    assert result.exit_code == 0 and result.output == "no open disputes\n"


# --- early fraud warnings ---------------------------------------------------------------------------


def test_an_early_fraud_warning_is_recorded_listed_and_refunded_once_with_one_command(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
    smtp: SmtpSink,
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    warning = at_stripe(
        app,
        "/_config/early_fraud_warnings",
        payment_intent=intent_of(invoice),
        fraud_type="made_with_stolen_card",
    )
    payload = warning_event("radar.early_fraud_warning.created", warning, "evt_efw_1")
    assert [deliver(client, payload) for _ in range(3)] == [200] * 3
    assert db.session.scalar(select(func.count()).select_from(EarlyFraudWarning)) == 1
    subjects = support_mail(smtp)
    assert len(subjects) == 1 and subjects[0].startswith("Early fraud warning: ")
    assert f"dicomportal refund-fraud-warning {warning['id']}" in SmtpSink.text(smtp.last_to(SUPPORT))

    listed = runner.invoke(args=["disputes", "--early-fraud-warnings"])
    assert listed.exit_code == 0, listed.output
    assert warning["id"] in listed.output and "made_with_stolen_card" in listed.output
    assert invoice.number in listed.output and invoice.user.email in listed.output

    sam = staff()
    answered = runner.invoke(args=["refund-fraud-warning", warning["id"], "--by", sam.email])
    assert answered.exit_code == 0, answered.output
    note = db.session.scalar(select(CreditNote))
    assert note is not None and note.number is not None and note.number in answered.output
    assert f"invoice {invoice.number} refunded in full" in answered.output
    db.session.refresh(invoice)
    assert invoice.status == InvoiceStatus.REFUNDED
    made = stripe_refunds(app, invoice)
    assert [(r.amount, r.reason) for r in made] == [(invoice.amount_paid_cents, "fraudulent")]
    assert note.actor_id == sam.id
    customer_mail = smtp.last_to(invoice.user.email)
    assert "Refund of" in str(customer_mail["Subject"])

    again = runner.invoke(args=["refund-fraud-warning", warning["id"], "--by", sam.email])
    assert again.exit_code != 0 and "answered already" in again.output
    assert len(stripe_refunds(app, invoice)) == 1
    assert runner.invoke(args=["disputes", "--early-fraud-warnings"]).output.startswith("no actionable")
    audited = db.session.scalar(select(AuditLog).where(AuditLog.action == "early_fraud_warning.refunded"))
    assert audited is not None and audited.actor_id == sam.id


def test_refund_fraud_warning_refuses_a_customer_account_and_an_unknown_warning(
    runner: Any, make_customer: Callable[..., User]
) -> None:
    customer = make_customer()
    refused = runner.invoke(args=["refund-fraud-warning", "issfr_nope", "--by", customer.email])
    assert refused.exit_code != 0 and "not a support or admin account" in refused.output
    unknown = runner.invoke(args=["refund-fraud-warning", "issfr_nope", "--by", staff().email])
    assert unknown.exit_code != 0 and "no early fraud warning issfr_nope" in unknown.output


def test_a_warning_that_became_a_dispute_is_not_refunded(
    app: Flask,
    client: FlaskClient,
    runner: Any,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    warning = at_stripe(app, "/_config/early_fraud_warnings", payment_intent=intent_of(invoice))
    assert deliver(client, warning_event("radar.early_fraud_warning.created", warning, "evt_efw")) == 200
    open_dispute(app, invoice)  # the bank went on to dispute it; no event has reached us yet

    answered = runner.invoke(args=["refund-fraud-warning", warning["id"], "--by", staff().email])

    assert answered.exit_code != 0 and "no longer actionable" in answered.output
    assert stripe_refunds(app, invoice) == []
    assert db.session.scalar(select(EarlyFraudWarning.actionable)) is False


def test_the_invoice_pdf_says_disputed_while_open_and_paid_again_once_won(
    app: Flask,
    client: FlaskClient,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    invoice = paid_invoice(make_customer, subscribe)
    AuthActions(client).login(invoice.user.email)
    before = pdf_text(client.get(f"/billing/invoices/{invoice.id}/pdf").data)
    dispute = open_dispute(app, invoice)
    assert deliver(client, dispute_event("charge.dispute.created", dispute, "evt_dp_1")) == 200

    disputed = pdf_text(client.get(f"/billing/invoices/{invoice.id}/pdf").data)
    at_stripe(app, f"/_config/disputes/{dispute['id']}", status="won")
    assert deliver(client, dispute_event("charge.dispute.closed", dispute, "evt_dp_2")) == 200
    won = pdf_text(client.get(f"/billing/invoices/{invoice.id}/pdf").data)

    assert "DISPUTED" in disputed and "Your bank has disputed this payment" in disputed
    assert "DISPUTED" not in before and "PAID" in before and won == before


def wait_for(check: Callable[[], bool], seconds: float = 15.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        db.session.rollback()  # see what the server's requests committed
        if check():
            return True
        time.sleep(0.2)
    return False


def test_localstripe_sends_a_disputes_signed_events_and_the_portal_records_them(
    app: Flask,
    live_server: str,
    stripe_server: LocalStripe,
    make_customer: Callable[..., User],
    subscribe: Callable[..., Subscription],
) -> None:
    """End to end: our localstripe extension schedules the events, signed, to the running portal."""
    invoice = paid_invoice(make_customer, subscribe)
    stripe_server.register_webhook(f"{live_server}/webhooks/stripe", WEBHOOK_SECRET, name="disputes-test")
    try:
        dispute = open_dispute(app, invoice)

        def status() -> str | None:
            return db.session.scalar(select(Dispute.status).where(Dispute.stripe_dispute_id == dispute["id"]))

        assert wait_for(lambda: status() == "needs_response")
        at_stripe(app, f"/_config/disputes/{dispute['id']}", status="lost")
        assert wait_for(lambda: status() == "lost")
    finally:  # later tests' events must not reach a server that is gone
        stripe_server.register_webhook("http://127.0.0.1:9/", WEBHOOK_SECRET, name="disputes-test")

    db.session.refresh(invoice)
    assert invoice.amount_lost_cents == invoice.total_cents + DISPUTE_FEE
    about_it = StripeEvent.payload.contains(dispute["id"])  # earlier tests' events may arrive too
    received = db.session.scalars(select(StripeEvent.type).where(about_it))
    assert set(received) == {
        "charge.dispute.created",
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
    }


# --- the localstripe extension itself ---------------------------------------------------------------

CARD = {"number": "4242424242424242", "exp_month": 12, "exp_year": 2035, "cvc": "123"}


def paid_at(api: stripe.StripeClient) -> Any:
    customer = api.v1.customers.create(params={"email": "kept@example.com"})
    card = api.v1.payment_methods.create(params={"type": "card", "card": CARD})
    api.v1.payment_methods.attach(card.id, params={"customer": customer.id})
    params = {"amount": 1900, "currency": "usd", "customer": customer.id, "payment_method": card.id}
    return api.v1.payment_intents.create(params=params | {"confirm": True, "off_session": True})


def config(server: LocalStripe, path: str, **data: Any) -> dict[str, Any]:
    body = urllib.parse.urlencode(data).encode()
    with urllib.request.urlopen(urllib.request.Request(server.api_base + path, data=body), timeout=10) as r:
        found: dict[str, Any] = json.loads(r.read())
    return found


def test_localstripe_disputes_take_evidence_close_and_survive_a_restart(tmp_path: Path) -> None:
    state = tmp_path / "localstripe.pickle"
    with LocalStripe(state_file=state) as server:
        api = stripe.StripeClient("sk_test_x", base_addresses={"api": server.api_base}, max_network_retries=0)
        intent = paid_at(api)
        opened = config(server, "/_config/disputes", payment_intent=intent.id, reason="duplicate")
        answered = api.v1.disputes.update(
            opened["id"], params={"evidence": {"uncategorized_text": "Two plans"}}
        )
        listed = api.v1.disputes.list(params={"payment_intent": intent.id})
        with pytest.raises(stripe.InvalidRequestError) as refused:
            api.v1.refunds.create(params={"payment_intent": intent.id})
    with LocalStripe(state_file=state) as server:
        api = stripe.StripeClient("sk_test_x", base_addresses={"api": server.api_base}, max_network_retries=0)
        kept = api.v1.disputes.retrieve(opened["id"])
        closed = api.v1.disputes.close(opened["id"])

    assert opened["status"] == "needs_response" and opened["charge"] == intent.latest_charge.id
    assert answered.status == "under_review" and answered.evidence.uncategorized_text == "Two plans"
    assert [d.id for d in listed] == [opened["id"]]
    assert refused.value.code == "charge_disputed"
    assert kept.status == "under_review" and kept.balance_transactions[0].fee == DISPUTE_FEE
    assert closed.status == "lost"
