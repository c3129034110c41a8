"""The invoice history: a customer's invoices a page at a time, newest first, by year and status.

Pages are found by keyset (the last invoice shown, not an offset), through the index on
(user_id, finalized_at, id) or (user_id, status, finalized_at, id): the thousandth page of a long
history costs what the first does. The years offered come from the first and the last invoice
(two index look-ups), not from reading every invoice.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Select, and_, or_, select

from dicomportal.billing.errors import BillingError
from dicomportal.extensions import db
from dicomportal.models import CreditNote, CreditNoteStatus, Invoice, InvoiceStatus

PAGE_SIZE = 20
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
STATUSES = (
    InvoiceStatus.PAID,
    InvoiceStatus.OPEN,
    InvoiceStatus.REFUNDED,
    InvoiceStatus.VOID,
    InvoiceStatus.UNCOLLECTIBLE,
)


@dataclass(frozen=True)
class Cursor:
    """A position in the history: the invoice's finalization time and id."""

    finalized_at: datetime
    invoice_id: int

    def token(self) -> str:
        """For URLs: ``<microseconds since 1970>.<id>``."""
        micros = (self.finalized_at - EPOCH) // timedelta(microseconds=1)
        return f"{micros}.{self.invoice_id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """:raises BillingError: not a token this module made."""
        micros, _, ident = token.partition(".")
        if not (micros.isdigit() and ident.isdigit() and len(micros) <= 17 and len(ident) <= 10):
            raise BillingError("That page of invoices does not exist.")
        moment = EPOCH + timedelta(microseconds=int(micros))
        return cls(moment, int(ident))

    @classmethod
    def of(cls, invoice: Invoice) -> Cursor:
        assert invoice.finalized_at is not None
        return cls(invoice.finalized_at, invoice.id)


@dataclass(frozen=True)
class HistoryFilter:
    year: int | None = None
    status: InvoiceStatus | None = None


@dataclass(frozen=True)
class HistoryPage:
    invoices: list[Invoice]
    older: Cursor | None  # where the next (older) page starts, if any
    newer: Cursor | None  # where the previous (newer) page ends, if any
    years: list[int]
    credit_notes: dict[int, list[CreditNote]] = field(default_factory=dict)


def invoice_history(
    user_id: int,
    filters: HistoryFilter,
    before: Cursor | None = None,
    after: Cursor | None = None,
    limit: int = PAGE_SIZE,
) -> HistoryPage:
    """One page of the customer's finalized invoices, newest first: the newest ones, those older
    than ``before``, or those newer than ``after``."""
    query = _filtered(user_id, filters)
    newest_first = after is None
    if before is not None:
        query = query.where(_older_than(before))
    if after is not None:
        query = query.where(_newer_than(after))
    order = (
        (Invoice.finalized_at.desc(), Invoice.id.desc())
        if newest_first
        else (Invoice.finalized_at, Invoice.id)
    )
    rows: list[Invoice] = list(db.session.scalars(query.order_by(*order).limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit] if newest_first else list(reversed(rows[:limit]))
    older = Cursor.of(rows[-1]) if rows and (more if newest_first else True) else None
    newer = Cursor.of(rows[0]) if rows and (before is not None or (not newest_first and more)) else None
    return HistoryPage(rows, older, newer, years_of(user_id), _credit_notes([i.id for i in rows]))


def _filtered(user_id: int, filters: HistoryFilter) -> Select[tuple[Invoice]]:
    query = select(Invoice).where(Invoice.user_id == user_id, Invoice.finalized_at.is_not(None))
    if filters.status is not None:
        query = query.where(Invoice.status == filters.status)
    else:
        query = query.where(Invoice.status != InvoiceStatus.DRAFT)
    if filters.year is not None:
        start = datetime(filters.year, 1, 1, tzinfo=UTC)
        query = query.where(
            Invoice.finalized_at >= start, Invoice.finalized_at < start.replace(year=filters.year + 1)
        )
    return query


# The plain "<=" / ">=" bound beside the exact condition lets both databases read the index from
# the cursor on, instead of filtering every entry before it.


def _older_than(cursor: Cursor) -> ColumnElement[bool]:
    return and_(
        Invoice.finalized_at <= cursor.finalized_at,
        or_(Invoice.finalized_at < cursor.finalized_at, Invoice.id < cursor.invoice_id),
    )


def _newer_than(cursor: Cursor) -> ColumnElement[bool]:
    return and_(
        Invoice.finalized_at >= cursor.finalized_at,
        or_(Invoice.finalized_at > cursor.finalized_at, Invoice.id > cursor.invoice_id),
    )


def years_of(user_id: int) -> list[int]:
    """The years the customer has invoices in, newest first: from the first and the last invoice,
    each one step along the (user_id, finalized_at, id) index (a single MIN() and MAX() together
    would read every entry of the customer on SQLite)."""
    first, last = _edge(user_id, newest=False), _edge(user_id, newest=True)
    if first is None or last is None:
        return []
    return list(range(last.year, first.year - 1, -1))


def _edge(user_id: int, newest: bool) -> datetime | None:
    order = Invoice.finalized_at.desc() if newest else Invoice.finalized_at.asc()
    query = (
        select(Invoice.finalized_at)
        .where(Invoice.user_id == user_id, Invoice.finalized_at.is_not(None))
        .order_by(order)
        .limit(1)
    )
    moment: datetime | None = db.session.scalar(query)
    return moment


def _credit_notes(invoice_ids: list[int]) -> dict[int, list[CreditNote]]:
    if not invoice_ids:
        return {}
    query = (
        select(CreditNote)
        .where(
            CreditNote.invoice_id.in_(invoice_ids),
            CreditNote.status.in_((CreditNoteStatus.ISSUED, CreditNoteStatus.REVERSED)),
        )
        .order_by(CreditNote.id)
    )
    notes: dict[int, list[CreditNote]] = {}
    for note in db.session.scalars(query):
        notes.setdefault(note.invoice_id, []).append(note)
    return notes


def own_invoice(user_id: int, invoice_id: int) -> Invoice | None:
    """One of the customer's finalized invoices; someone else's (or a draft) is as good as missing."""
    invoice: Invoice | None = db.session.get(Invoice, invoice_id)
    if invoice is None or invoice.user_id != user_id or invoice.number is None:
        return None
    return invoice


def own_credit_note(user_id: int, note_id: int) -> CreditNote | None:
    """One of the customer's issued credit notes (or one reversed since: still a document), or None."""
    note: CreditNote | None = db.session.get(CreditNote, note_id)
    if note is None or note.user_id != user_id or not (note.is_issued or note.is_reversed):
        return None
    return note
