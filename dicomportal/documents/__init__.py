"""Invoices and credit notes as printed: HTML (our templates) -> PDF/A-3 (WeasyPrint) + Factur-X.

Independent of the database and of Flask requests: the caller builds a :class:`Document` from its
records and passes the template port (``jinja_renderer(app.jinja_env)``); the result is bytes to
store once and serve as they are.
"""

from __future__ import annotations

from dicomportal.documents.facturx_xml import build_xml
from dicomportal.documents.model import (
    OUTSIDE_SCOPE_MENTION,
    REVERSE_CHARGE_MENTION,
    Buyer,
    Document,
    DocumentKind,
    InvalidDocument,
    Line,
    LineKind,
    Logo,
    PaymentMethod,
    PaymentStatus,
    Period,
    Seller,
    TaxCategory,
    TaxLine,
)
from dicomportal.documents.render import (
    HtmlRenderer,
    ResourceRefused,
    default_logo,
    jinja_renderer,
    render_html,
    render_pdf,
)

__all__ = [
    "OUTSIDE_SCOPE_MENTION",
    "REVERSE_CHARGE_MENTION",
    "Buyer",
    "Document",
    "DocumentKind",
    "HtmlRenderer",
    "InvalidDocument",
    "Line",
    "LineKind",
    "Logo",
    "PaymentMethod",
    "PaymentStatus",
    "Period",
    "ResourceRefused",
    "Seller",
    "TaxCategory",
    "TaxLine",
    "build_xml",
    "default_logo",
    "jinja_renderer",
    "render_html",
    "render_pdf",
]
