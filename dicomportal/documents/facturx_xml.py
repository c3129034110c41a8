"""The EN 16931 (Factur-X profile EN16931) CII XML of a document, built by the ``factur-x`` package.

The package takes a dict keyed by EN 16931 business terms (BT-1 invoice number, BG-25 lines...)
and writes and XSD-checks the XML. This module only maps a :class:`Document` onto those terms.

Sign conventions (EN 16931): a credit note (type 381) carries positive amounts; on an invoice a
credit line (proration for unused time) has a negative quantity and a positive net price, since
BR-27 forbids negative prices.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import facturx
from babel.numbers import get_currency_precision
from lxml import etree

from dicomportal.documents.model import Buyer, Document, Line, Seller, TaxCategory, TaxLine

LEVEL = "en16931"
INVOICE_TYPE = "380"  # commercial invoice (UNTDID 1001)
CREDIT_NOTE_TYPE = "381"
BANK_CARD = "48"  # payment means (UNTDID 4461)
ONE = "C62"  # unit of measure "one" (UN/ECE Recommendation 20)


XSI_NIL = "{http://www.w3.org/2001/XMLSchema-instance}nil"


def build_xml(doc: Document) -> bytes:
    """The document's Factur-X XML (UTF-8), checked against the EN16931 XSD by ``factur-x``.

    :raises Exception: ``factur-x``'s own error when the XML does not match the XSD.
    """
    generated = facturx.generate_cii_xml(
        _business_terms(doc), level=LEVEL, check_xsd=False, check_schematron=False
    )
    root = etree.fromstring(generated)
    # factur-x 7.8 writes the mandatory ApplicableHeaderTradeDelivery as xsi:nil when there is no
    # delivery data (a subscription has none): the XSD wants it present and empty instead.
    for element in root.iter():
        element.attrib.pop(XSI_NIL, None)
    etree.cleanup_namespaces(root)
    facturx.xml_check_xsd(root, flavor="factur-x", level=LEVEL)
    xml: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return xml


def _business_terms(doc: Document) -> dict[str, Any]:
    terms: dict[str, Any] = {
        "BT-1": doc.number,
        "BT-2": doc.issue_date,
        "BT-3": CREDIT_NOTE_TYPE if doc.is_credit_note else INVOICE_TYPE,
        "BT-5": doc.currency,
        **_seller(doc.seller, vat_allowed=_vat_ids_allowed(doc)),
        **_buyer(doc.buyer, vat_allowed=_vat_ids_allowed(doc)),
        **_settlement(doc),
        "BG-23": [_tax_row(doc, tax) for tax in doc.tax_lines],
        "BG-25": [_line(doc, n, line) for n, line in enumerate(doc.lines, start=1)],
    }
    notes = [note for note in (doc.reason, *doc.extra_notes) if note]
    if notes:
        terms["BG-1"] = [{"BT-22": note} for note in notes]
    if doc.service_period:
        terms["BT-73"] = doc.service_period.start
        terms["BT-74"] = doc.service_period.end
    if doc.credited_invoice_number:
        preceding: dict[str, Any] = {"BT-25": doc.credited_invoice_number}
        if doc.credited_invoice_date:
            preceding["BT-26"] = doc.credited_invoice_date
        terms["BG-3"] = [preceding]
    return terms


def _vat_ids_allowed(doc: Document) -> bool:
    # BR-O-02: a document "not subject to VAT" names no seller or buyer VAT identifier.
    return not any(t.category is TaxCategory.OUTSIDE_SCOPE for t in doc.tax_lines)


def _seller(seller: Seller, vat_allowed: bool) -> dict[str, Any]:
    party: dict[str, Any] = {"name": seller.name, **_address(seller.address_lines, seller.country)}
    if seller.vat_number and vat_allowed:
        party["vat_identifier"] = seller.vat_number
    if seller.registration:
        party["legal_identifier"] = seller.registration  # BT-30, e.g. the company register number
    elif seller.vat_number and not vat_allowed:
        # BR-CO-26 wants BT-29, BT-30 or BT-31; BR-O-02 forbids BT-31 here: the VAT number as BT-29.
        party["identifiers"] = {None: seller.vat_number}
    if seller.email:
        party["contacts"] = [{"email": seller.email}]
    return {"BG-4": party}


def _buyer(buyer: Buyer, vat_allowed: bool) -> dict[str, Any]:
    party: dict[str, Any] = {"name": buyer.legal_name, **_address(buyer.address_lines, buyer.country)}
    # BR-CO-9: a VAT identifier starts with its country code; other tax IDs (a US EIN) stay on the PDF.
    if buyer.tax_id and vat_allowed and buyer.tax_id[:2].isalpha():
        party["vat_identifier"] = buyer.tax_id.replace(" ", "")
    contact = {"name": buyer.name if buyer.company else None, "email": buyer.email}
    if any(contact.values()):
        party["contacts"] = [{key: value for key, value in contact.items() if value}]
    return {"BG-7": party}


def _address(lines: tuple[str, ...], country: str) -> dict[str, str]:
    """Free address lines into the three line terms (the third takes any remainder)."""
    address = dict(zip(("addr_l1", "addr_l2"), lines[:2], strict=False))
    if lines[2:]:
        address["addr_l3"] = ", ".join(lines[2:])
    return {**address, "country_code": country}


def _settlement(doc: Document) -> dict[str, Any]:
    total = _amount(doc.total_cents, doc.currency)
    paid = doc.total_cents - doc.amount_due_cents if not doc.is_credit_note else 0
    terms: dict[str, Any] = {
        "BT-106": _amount(doc.subtotal_cents, doc.currency),
        "BT-109": _amount(doc.subtotal_cents, doc.currency),
        "BT-110": _amount(doc.tax_cents, doc.currency),
        "BT-112": total,
        "BT-113": _amount(paid, doc.currency),
        "BT-115": _amount(doc.total_cents - paid, doc.currency),
    }
    if doc.due_date and doc.amount_due_cents:
        terms["BT-9"] = doc.due_date
    if doc.payment_method:
        terms["BT-81"] = BANK_CARD
        terms["BT-87"] = doc.payment_method.last4
    return terms


def _tax_row(doc: Document, tax: TaxLine) -> dict[str, Any]:
    row: dict[str, Any] = {
        "BT-116": _amount(tax.taxable_cents, doc.currency),
        "BT-117": _amount(tax.tax_cents, doc.currency),
        "BT-118": tax.category.value,
    }
    if tax.category is not TaxCategory.OUTSIDE_SCOPE:  # BR-O-10: no rate when not subject to VAT
        row["BT-119"] = _percent(tax.rate_bp)
    if tax.exemption_reason:
        row["BT-120"] = tax.exemption_reason
    if tax.category.exemption_code:
        row["BT-121"] = tax.category.exemption_code
    return row


def _line(doc: Document, number: int, line: Line) -> dict[str, Any]:
    sign = -1 if line.unit_price_cents < 0 else 1
    terms: dict[str, Any] = {
        "BT-126": str(number),
        "BT-153": line.description,
        "BT-129": str(sign * line.quantity),
        "BT-130": ONE,
        "BT-146": _amount(abs(line.unit_price_cents), doc.currency),
        "BT-131": _amount(line.amount_cents, doc.currency),
        "BT-151": line.tax_category.value,
    }
    if line.tax_category is not TaxCategory.OUTSIDE_SCOPE:  # BR-O-05
        terms["BT-152"] = _percent(line.tax_rate_bp)
    if line.period:
        terms["BT-134"] = line.period.start
        terms["BT-135"] = line.period.end
    return terms


def _amount(minor_units: int, currency: str) -> str:
    """Integer minor units -> the decimal string of the currency's precision (1999 -> "19.99")."""
    digits = get_currency_precision(currency)
    return f"{Decimal(minor_units).scaleb(-digits):.{digits}f}"


def _percent(rate_bp: int) -> str:
    return f"{Decimal(rate_bp).scaleb(-2):.2f}"
