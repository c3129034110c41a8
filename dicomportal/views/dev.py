"""Demo-only tools: the mail outbox and the demo clock. Every route answers 404 unless DEMO_MODE is on."""

from __future__ import annotations

import re
from datetime import timedelta

from dateutil.relativedelta import relativedelta
from flask import Blueprint, Response, abort, current_app, flash, render_template, request, url_for
from markupsafe import Markup, escape
from sqlalchemy import select

from dicomportal import clock, jobs
from dicomportal.billing.jobs import CHARGE_OUTCOME
from dicomportal.extensions import db
from dicomportal.models import EmailOutbox
from dicomportal.views._htmx import redirect_after_post

bp = Blueprint("dev", __name__, url_prefix="/dev")

# http(s) links up to whitespace or a quote/bracket; trailing punctuation is left out of the link.
LINK = re.compile(r"""https?://[^\s<>"']*[^\s<>"'.,;:!?)\]]""")


@bp.app_template_filter("autolink")
def autolink(text: str) -> Markup:
    """Escape plain text and turn its http(s) links into clickable ones (no ``|safe`` needed)."""
    parts: list[Markup] = []
    position = 0
    for match in LINK.finditer(text):
        parts.append(escape(text[position : match.start()]))
        parts.append(Markup('<a href="{0}">{0}</a>').format(match.group(0)))
        position = match.end()
    parts.append(escape(text[position:]))
    return Markup("").join(parts)


@bp.before_request
def demo_only() -> None:
    if not current_app.config["DEMO_MODE"]:
        abort(404)


@bp.get("/outbox")
def outbox() -> str:
    """The demo mail outbox: the newest 100 emails the portal wrote, sent or not."""
    emails = db.session.scalars(select(EmailOutbox).order_by(EmailOutbox.id.desc()).limit(100)).all()
    return render_template("dev/outbox.html", emails=emails)


@bp.get("/outbox/<int:email_id>")
def outbox_email(email_id: int) -> str:
    """One email from the demo outbox, as its plain-text part with working links."""
    email = db.session.get(EmailOutbox, email_id) or abort(404)
    return render_template("dev/outbox_email.html", email=email)


TRAVEL_STEPS = {"day": timedelta(days=1), "week": timedelta(weeks=1), "month": relativedelta(months=1)}


@bp.get("/clock")
def clock_page() -> str:
    """The demo clock: move time forward to watch renewals, dunning retries and reminders happen."""
    return render_template("dev/clock.html", now=clock.now(), steps=TRAVEL_STEPS)


@bp.post("/clock")
def travel() -> Response:
    """Move the demo clock forward by one step and run the scheduled jobs once at the new time."""
    step = TRAVEL_STEPS.get(request.form.get("step", ""))
    if step is None:
        flash("Choose a day, a week or a month.", "error")
        return redirect_after_post(url_for("dev.clock_page"))
    clock.travel_to(clock.now() + step)
    results = jobs.run_once()
    renewals, retries = results["renew_due_subscriptions"], results["retry_failed_payments"]
    flash(
        f"It is now {clock.now():%d %b %Y %H:%M} UTC. Renewed {renewals['renewed']}, "
        f"retried {sum(retries[k] for k in CHARGE_OUTCOME.values())} payment(s).",
        "success",
    )
    return redirect_after_post(url_for("dev.clock_page"))
