"""The ``dicomportal`` console script: Flask's CLI (run, db, shell) plus our own commands."""

from __future__ import annotations

import importlib.util
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import Flask
from flask.cli import FlaskGroup, with_appcontext

from dicomportal.models import Dispute, EarlyFraudWarning, Role


def build_cli() -> FlaskGroup:
    """The ``dicomportal`` command group; ``demo`` and ``stripe-server`` work without loading the app."""
    group = FlaskGroup(create_app=create_app_or_explain, help="dicomportal: subscription and billing portal.")
    group.add_command(demo_command)
    group.add_command(stripe_server_command)
    group.add_command(check_command)
    return group


def create_app_or_explain() -> Flask:
    """The app for Flask's commands; unsafe production settings end the command with their list."""
    from dicomportal import create_app
    from dicomportal.deployment.safety import UnsafeSettings

    try:
        return create_app()
    except UnsafeSettings as exc:
        raise click.ClickException(str(exc)) from exc


def main() -> None:
    """Entry point of the ``dicomportal`` console script."""
    build_cli()()


def require_demo_extra() -> None:
    """:raises click.ClickException: localstripe (the ``demo`` extra) is not installed."""
    if importlib.util.find_spec("localstripe") is None:
        raise click.ClickException(
            "The demo runs localstripe, which is not installed. Install the demo extra: pip install '.[demo]'"
        )


@click.command("demo")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to serve the portal on.")
@click.option("--port", default=5000, show_default=True, type=int, help="Port to serve the portal on.")
@click.option("--stripe-port", type=int, default=None, help="localstripe's port  [default: a free one]")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Where the SQLite database and secret key live  [default: the instance folder]",
)
def demo_command(host: str, port: int, stripe_port: int | None, data_dir: Path | None) -> None:
    """Run the whole portal locally: localstripe, a seeded database, demo logins. Ctrl-C stops it."""
    require_demo_extra()
    from dicomportal.devtools.demo import DemoError, DemoOptions, run_demo

    options = DemoOptions(host=host, port=port, stripe_port=stripe_port, data_dir=data_dir)
    try:
        run_demo(options, echo=click.echo)
    except DemoError as exc:
        raise click.ClickException(str(exc)) from exc


@click.command("stripe-server")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8420, show_default=True, type=int)
def stripe_server_command(host: str, port: int) -> None:
    """Serve localstripe (a local Stripe API) in memory until Ctrl-C."""
    require_demo_extra()
    from dicomportal.devtools.stripe_server import serve

    click.echo(f"localstripe at http://{host}:{port} (in memory). Press Ctrl-C to stop")
    serve(host, port)


@click.command("check")
@click.option(
    "--data-dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="The instance folder (secret key, SQLite database) to check  [default: the instance folder]",
)
def check_command(data_dir: Path | None) -> None:
    """Deployment checklist: each item OK, WARN or FAIL with what to do. Exit status 1 on a FAIL."""
    from dicomportal import create_app
    from dicomportal.deployment.checklist import passed, report, run_checks

    # Built without the startup refusal, so the checklist can name what the app would refuse.
    app = create_app(instance_path=str(data_dir.resolve()) if data_dir else None, refuse_unsafe=False)
    findings = run_checks(app)
    click.echo(report(findings))
    if not passed(findings):
        raise SystemExit(1)


@click.command("seed")
@with_appcontext
def seed_command() -> None:
    """Load the plan catalog from the package's data file (idempotent)."""
    from dicomportal.billing.catalog import seed_catalog

    changes = seed_catalog()
    click.echo(f"catalog seeded: {changes} change(s)")


@click.command("create-user")
@click.option("--email", prompt=True)
@click.option("--name", prompt=True)
@click.option("--role", type=click.Choice([r.value for r in Role]), default=Role.CUSTOMER.value)
@click.password_option()
@with_appcontext
def create_user_command(email: str, name: str, role: str, password: str) -> None:
    """Create an account, e.g. ``dicomportal create-user --role admin``."""
    from dicomportal.accounts import AccountError, create_user
    from dicomportal.extensions import db

    try:
        user = create_user(email, password, name, Role(role))
    except AccountError as exc:
        raise click.ClickException(str(exc)) from exc
    db.session.commit()
    click.echo(f"created {user.role.value} {user.email} (id {user.id})")


@click.command("tick")
@click.option(
    "--now",
    "now",
    default=None,
    help="ISO date-time to run at (moves this process's clock), e.g. 2027-01-15T10:00Z",
)
@with_appcontext
def tick_command(now: str | None) -> None:
    """Run every scheduled job once (renewals, dunning retries, reconcile, mail), at --now if given."""
    from dicomportal import clock, jobs

    if now:
        moment = _parse_moment(now)
        clock.travel_to(moment)
    results = jobs.run_once()
    click.echo(f"tick at {clock.now().isoformat(timespec='seconds')}")
    for line in jobs.describe(results):
        click.echo(f"  {line}")


def _parse_moment(text: str) -> datetime:
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError as exc:
        raise click.BadParameter(f"{text!r} is not an ISO date-time such as 2027-01-15T10:00Z") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@click.command("worker")
@click.option("--interval", default=30.0, show_default=True, help="Seconds between passes.")
@with_appcontext
def worker_command(interval: float) -> None:
    """Run the scheduled jobs in a loop until interrupted (run one per deployment, or more on PostgreSQL)."""
    from dicomportal import jobs

    click.echo(f"worker: a pass every {interval:g} s; Ctrl-C to stop")
    try:
        jobs.run_forever(interval)
    except KeyboardInterrupt:
        click.echo("worker stopped")


@click.command("refund")
@click.argument("invoice")
@click.option(
    "--amount", type=click.IntRange(min=1), default=None, help="Cents to refund  [default: all that remains]"
)
@click.option("--reason", required=True, help="Why: printed on the credit note and kept in the audit log.")
@click.option("--by", "staff_email", default=None, help="The support or admin account doing it (audit log).")
@with_appcontext
def refund_command(invoice: str, amount: int | None, reason: str, staff_email: str | None) -> None:
    """Refund a paid invoice (by number, e.g. DP-2026-000001) in full or in part, with a credit note."""
    from flask import current_app

    from dicomportal.billing import refunds
    from dicomportal.billing.errors import BillingError
    from dicomportal.billing.money import format_money
    from dicomportal.documents import jinja_renderer
    from dicomportal.documents.stored import credit_note_pdf
    from dicomportal.mail import deliver_pending

    try:
        actor = refunds.find_staff(staff_email) if staff_email else None
        note = refunds.refund_invoice(refunds.find_invoice(invoice).id, amount, reason, actor_id=actor)
    except BillingError as exc:
        raise click.ClickException(str(exc)) from exc
    credit_note_pdf(note, current_app.config, jinja_renderer(current_app.jinja_env))
    deliver_pending()  # the customer's email about the refund (the worker would send it otherwise)
    refunded = note.invoice
    click.echo(
        f"credit note {note.number}: {format_money(note.total_cents, note.currency)} refunded "
        f"(Stripe refund {note.stripe_refund_id})"
    )
    left = format_money(refunded.refundable_cents, refunded.currency)
    state = "refunded in full" if refunded.refundable_cents == 0 else f"{left} left to refund"
    click.echo(f"invoice {refunded.number}: {state}")


@click.command("reconcile")
@click.option("--report", "report_only", is_flag=True, help="Only report: book nothing, change nothing.")
@click.option(
    "--days",
    type=click.IntRange(min=1),
    default=None,
    help="Invoices paid in the last N days  [default: RECONCILE_DAYS, 35]",
)
@with_appcontext
def reconcile_command(report_only: bool, days: int | None) -> None:
    """Compare recent invoices with Stripe: one line per difference; exit status 1 when there are any.

    Without --report, refunds made in the Stripe Dashboard that have no credit note are booked
    (and failed refunds' credit notes reversed), as their webhooks would have done.
    """
    from dicomportal import clock
    from dicomportal.billing.reconcile import reconcile
    from dicomportal.mail import deliver_pending

    report = reconcile(fix=not report_only, days=days)
    if report.fixed:
        deliver_pending()  # the customers' and staff's emails about what was booked
    for line in report.lines:
        click.echo(line)
    for note in report.notes:
        click.echo(f"note: {note}")
    at = clock.now().isoformat(timespec="seconds")
    summary = f"{report.checked} invoice(s) paid in the last {report.days} days checked at {at}"
    if report.books_agree:
        click.echo(f"books agree: {summary}")
        return
    click.echo(f"{len(report.lines)} difference(s): {summary}")
    raise SystemExit(1)


@click.command("restore")
@click.argument("email")
@click.option("--by", "staff_email", default=None, help="The staff member restoring (for the audit log).")
@with_appcontext
def restore_command(email: str, staff_email: str | None) -> None:
    """Restore a customer's ended subscription within the restore window (same plan, new period, a charge)."""
    from dicomportal.billing.cancellation import restore
    from dicomportal.billing.errors import BillingError
    from dicomportal.extensions import db
    from dicomportal.mail import deliver_pending
    from dicomportal.models import User

    staff = db.session.scalar(db.select(User).where(User.email == staff_email)) if staff_email else None
    if staff_email and (staff is None or not staff.is_staff):
        raise click.ClickException(f"{staff_email} is not a support or admin account; nothing was restored.")
    try:
        subscription = restore(email, staff.id if staff else None)
    except BillingError as exc:
        raise click.ClickException(str(exc)) from exc
    deliver_pending()
    click.echo(
        f"restored {email}: {subscription.price.plan.name}, {subscription.status.value}, "
        f"period to {subscription.current_period_end.date().isoformat()}"
    )


@click.command("disputes")
@click.option(
    "--early-fraud-warnings",
    "warnings",
    is_flag=True,
    help="List the actionable early fraud warnings instead (answer one with refund-fraud-warning).",
)
@with_appcontext
def disputes_command(warnings: bool) -> None:
    """List open disputes, the soonest evidence deadline first (or actionable early fraud warnings)."""
    from dicomportal import clock
    from dicomportal.billing import disputes

    if warnings:
        _echo_fraud_warnings(disputes.actionable_fraud_warnings())
        return
    found = disputes.open_disputes()
    if not found:
        click.echo("no open disputes")
        return
    now = clock.now()
    today = now.date().isoformat()
    click.echo(f"{len(found)} open dispute(s), soonest evidence deadline first (today is {today}):")
    for dispute in found:
        click.echo("  " + _dispute_line(dispute, disputes.days_left(dispute, now)))


def _dispute_line(dispute: Dispute, days: int | None) -> str:
    from dicomportal.billing.money import format_money

    invoice = dispute.invoice
    assert invoice is not None  # open_disputes() lists only disputes of our invoices
    if dispute.evidence_due_by is None or days is None:
        due = "no evidence deadline"
    else:
        left = "due today" if days == 0 else f"{days} days left" if days > 0 else f"{-days} days overdue"
        due = f"evidence due {dispute.evidence_due_by.date().isoformat()} ({left})"
    return (
        f"{dispute.stripe_dispute_id}  {format_money(dispute.amount_cents, dispute.currency)}  "
        f"{dispute.reason}  {dispute.status.value}  {invoice.user.email}  {invoice.number}  {due}"
    )


def _echo_fraud_warnings(found: list[EarlyFraudWarning]) -> None:
    from dicomportal.billing.money import format_money

    if not found:
        click.echo("no actionable early fraud warnings")
        return
    click.echo(f"{len(found)} actionable early fraud warning(s), oldest first:")
    for warning in found:
        assert warning.payment is not None  # only warnings about our payments are recorded
        invoice = warning.payment.invoice
        click.echo(
            f"  {warning.stripe_id}  {format_money(invoice.amount_paid_cents, invoice.currency)}  "
            f"{warning.fraud_type}  {invoice.user.email}  {invoice.number}  "
            f"reported {warning.created_at.date().isoformat()}"
        )
    click.echo("refund one in full with: dicomportal refund-fraud-warning ISSFR_ID --by STAFF_EMAIL")


@click.command("refund-fraud-warning")
@click.argument("warning_id", metavar="ISSFR_ID")
@click.option("--by", "staff_email", required=True, help="The support or admin account doing it (audit log).")
@with_appcontext
def refund_fraud_warning_command(warning_id: str, staff_email: str) -> None:
    """Answer an early fraud warning with a full refund of its invoice (Stripe reason: fraudulent)."""
    from flask import current_app

    from dicomportal.billing import disputes, refunds
    from dicomportal.billing.errors import BillingError
    from dicomportal.billing.money import format_money
    from dicomportal.documents import jinja_renderer
    from dicomportal.documents.stored import credit_note_pdf
    from dicomportal.mail import deliver_pending

    try:
        actor = refunds.find_staff(staff_email)
        note = disputes.refund_fraud_warning(warning_id, actor)
    except BillingError as exc:
        raise click.ClickException(str(exc)) from exc
    credit_note_pdf(note, current_app.config, jinja_renderer(current_app.jinja_env))
    deliver_pending()
    click.echo(
        f"early fraud warning {warning_id.strip()}: invoice {note.invoice.number} refunded in full, "
        f"{format_money(note.total_cents, note.currency)} (credit note {note.number}, Stripe refund "
        f"{note.stripe_refund_id})"
    )


def register(app: Flask) -> None:
    """Attach our commands to the app's CLI."""
    for command in (
        seed_command,
        create_user_command,
        tick_command,
        worker_command,
        restore_command,
        refund_command,
        disputes_command,
        refund_fraud_warning_command,
        reconcile_command,
    ):
        app.cli.add_command(command)


if __name__ == "__main__":
    main()
