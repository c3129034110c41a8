"""Demo-only tools: the mail outbox. Every route answers 404 unless DEMO_MODE is on."""

from __future__ import annotations

import re

from flask import Blueprint, abort, current_app, render_template
from markupsafe import Markup, escape
from sqlalchemy import select

from dicomportal.extensions import db
from dicomportal.models import EmailOutbox

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
