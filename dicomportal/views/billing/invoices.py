"""The invoice history and the PDFs of invoices and credit notes (stored once, served as stored)."""

from __future__ import annotations

from typing import cast

from flask import Response, abort, current_app, request
from flask_login import current_user, login_required

from dicomportal.billing.errors import BillingError
from dicomportal.billing.history import (
    STATUSES,
    Cursor,
    HistoryFilter,
    invoice_history,
    own_credit_note,
    own_invoice,
)
from dicomportal.documents import jinja_renderer
from dicomportal.documents.stored import credit_note_pdf, invoice_pdf
from dicomportal.models import InvoiceStatus, StoredDocument
from dicomportal.views._htmx import render
from dicomportal.views.billing import bp


@bp.get("/invoices")
@login_required
def invoices() -> Response:
    """Every invoice, newest first, by year and status, a page at a time (in place with htmx)."""
    filters = _filters()
    try:
        before = Cursor.parse(request.args["before"]) if request.args.get("before") else None
        after = Cursor.parse(request.args["after"]) if request.args.get("after") else None
    except BillingError:
        abort(404)
    history = invoice_history(current_user.id, filters, before=before, after=after)
    return render(
        "billing/invoices.html",
        "billing/_invoice_history.html",
        history=history,
        filters=filters,
        statuses=STATUSES,
    )


def _filters() -> HistoryFilter:
    """The year and status asked for; anything else is no filter."""
    year = request.args.get("year", "")
    status = request.args.get("status", "")
    return HistoryFilter(
        year=int(year) if year.isdigit() and 1970 <= int(year) <= 9999 else None,
        status=InvoiceStatus(status) if status in {s.value for s in STATUSES} else None,
    )


@bp.get("/invoices/<int:invoice_id>/pdf")
@login_required
def invoice_document(invoice_id: int) -> Response:
    """The invoice's PDF, rendered once and then served byte for byte (ETag; 304 when unchanged)."""
    invoice = own_invoice(current_user.id, invoice_id)
    if invoice is None:
        abort(404)
    return _pdf(invoice_pdf(invoice, current_app.config, jinja_renderer(current_app.jinja_env)))


@bp.get("/credit-notes/<int:credit_note_id>/pdf")
@login_required
def credit_note_document(credit_note_id: int) -> Response:
    """A credit note's PDF (a refund, referencing the invoice it credits)."""
    note = own_credit_note(current_user.id, credit_note_id)
    if note is None:
        abort(404)
    return _pdf(credit_note_pdf(note, current_app.config, jinja_renderer(current_app.jinja_env)))


def _pdf(document: StoredDocument) -> Response:
    response = Response(document.content, mimetype="application/pdf")
    response.set_etag(document.sha256)
    response.headers["Content-Disposition"] = f'attachment; filename="{document.filename}"'
    response.headers["Cache-Control"] = "private, no-cache"
    return cast(Response, response.make_conditional(request))
