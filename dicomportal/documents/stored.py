"""Stored PDFs: a document is rendered once, kept in the database, and served as stored.

An invoice's PDF is kept per payment status it prints (due, paid, partially refunded, refunded,
void): everything else on it was fixed at finalization, so each of these PDFs is rendered at most
once and every later download is the same bytes, whatever the customer's billing details become.
A credit note never changes and has one PDF. Two first downloads at the same moment render the
same bytes; the second insert loses to the unique key and the stored row is served.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from dicomportal.documents.model import Document
from dicomportal.documents.records import credit_note_document, invoice_document, printed_status
from dicomportal.documents.render import HtmlRenderer, render_pdf
from dicomportal.extensions import db
from dicomportal.models import CreditNote, Invoice, StoredDocument


def invoice_pdf(invoice: Invoice, config: Mapping[str, Any], render: HtmlRenderer) -> StoredDocument:
    """The stored PDF of a finalized invoice, rendered now if this status has none yet."""
    key = f"invoice:{invoice.id}:{printed_status(invoice).value}"
    return _stored(
        key, invoice.user_id, f"{invoice.number}.pdf", lambda: invoice_document(invoice, config), render
    )


def credit_note_pdf(note: CreditNote, config: Mapping[str, Any], render: HtmlRenderer) -> StoredDocument:
    """The stored PDF of an issued credit note."""
    return _stored(
        f"credit_note:{note.id}",
        note.user_id,
        f"{note.number}.pdf",
        lambda: credit_note_document(note, config),
        render,
    )


def _stored(
    key: str, user_id: int, filename: str, build: Callable[[], Document], render: HtmlRenderer
) -> StoredDocument:
    found: StoredDocument | None = db.session.scalar(select(StoredDocument).where(StoredDocument.key == key))
    if found is not None:
        return found
    pdf = render_pdf(build(), render)
    row = StoredDocument(
        key=key, user_id=user_id, filename=filename, sha256=hashlib.sha256(pdf).hexdigest(), content=pdf
    )
    try:
        with db.session.begin_nested():
            db.session.add(row)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        winner: StoredDocument | None = db.session.scalar(
            select(StoredDocument).where(StoredDocument.key == key)
        )
        assert winner is not None
        return winner
    return row
