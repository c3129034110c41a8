"""The PDFs as a customer's accountant reads them: every printed field, found by text extraction."""

from __future__ import annotations

import dataclasses
import hashlib
import subprocess
import sys
import threading
from collections.abc import Iterator, Mapping
from datetime import date
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from io import BytesIO
from typing import Any

import pytest
from pypdf import PdfReader

from dicomportal.documents import (
    REVERSE_CHARGE_MENTION,
    Document,
    HtmlRenderer,
    Line,
    LineKind,
    ResourceRefused,
    TaxCategory,
    TaxLine,
    render_pdf,
    samples,
)
from tests.helpers.pdf import pdf_text

DASH = "\N{EN DASH}"  # Babel writes date ranges with an en dash


def test_renewal_invoice_shows_every_field_an_accountant_needs(render: HtmlRenderer) -> None:
    text = pdf_text(render_pdf(samples.renewal_invoice(), render))

    # Seller identity, from settings: name, address, country, VAT number, register entry.
    for seller_field in (
        "DICOM Portal GmbH",
        "Friedrichstraße 123",
        "10117 Berlin",
        "Germany",
        "VAT DE136695976",
    ):
        assert seller_field in text
    assert "HRB 234567 B" in text
    # Buyer as finalized: company, contact name, address, tax ID.
    for buyer_field in (
        "Radiologie am See",
        "Dr. Anna Weber",
        "Seestraße 5",
        "80802 München",
        "VAT DE811907980",
    ):
        assert buyer_field in text
    # Number and dates: issue, service period, due, paid.
    assert "INVOICE" in text and "DP-2026-000042" in text
    assert "Issue date Mar 1, 2026" in text
    assert f"Service period Mar 1 {DASH} 31, 2026" in text
    assert "Due date Mar 1, 2026" in text and "Paid on Mar 1, 2026" in text
    # One line per charge with quantity, unit price, rate and amount.
    assert f"Professional plan, monthly Subscription · Mar 1 {DASH} 31, 2026 1 $79.00 19% $79.00" in text
    assert f"Extra storage, 100 GB Add-on · Mar 1 {DASH} 31, 2026 1 $10.00 19% $10.00" in text
    assert f"Viewer credits beyond the allowance Usage · Feb 1 {DASH} 28, 2026 120 $0.25 19% $30.00" in text
    # Tax per rate, totals, payment status and method.
    assert "VAT 19% $119.00 $22.61" in text
    assert "Subtotal (excl. VAT) $119.00" in text and "Total $141.61" in text
    assert "Amount due $0.00" in text
    assert "PAID Paid on Mar 1, 2026 with Visa •••• 4242." in text
    assert "Reverse charge" not in text  # a German company pays German VAT


def test_proration_invoice_lists_the_credit_and_the_charge_under_reverse_charge(render: HtmlRenderer) -> None:
    text = pdf_text(render_pdf(samples.proration_invoice(), render))

    assert f"Unused time on Clinic plan Plan change · Mar 15 {DASH} 31, 2026 1 -$21.03 0% -$21.03" in text
    assert (
        f"Remaining time on Professional plan Plan change · Mar 15 {DASH} 31, 2026 1 $43.33 0% $43.33" in text
    )
    assert "Clinique du Parc SAS" in text and "VAT FR40303265045" in text and "France" in text
    assert "Reverse charge 0% $22.30 $0.00" in text
    assert "Total $22.30" in text
    assert REVERSE_CHARGE_MENTION in text
    assert "Mastercard •••• 4444" in text


def test_credit_note_references_the_invoice_and_the_refund(render: HtmlRenderer) -> None:
    text = pdf_text(render_pdf(samples.credit_note(), render))

    assert "CREDIT NOTE" in text and "CN-2026-000007" in text
    assert "Original invoice DP-2026-000042" in text and "Invoice date Mar 1, 2026" in text
    assert "credits $35.70 against invoice DP-2026-000042 of Mar 1, 2026" in text
    assert "Reason: Overage charged in error" in text
    assert (
        f"Refund: viewer credits beyond the allowance Credit · Feb 1 {DASH} 28, 2026 120 $0.25 19% $30.00"
        in text
    )
    assert "VAT 19% $30.00 $5.70" in text and "Total credited $35.70" in text
    assert "REFUNDED Refunded on Mar 9, 2026 to Visa •••• 4242." in text
    assert "Amount due" not in text


def test_french_consumer_pays_french_vat_and_sees_what_is_due(render: HtmlRenderer) -> None:
    text = pdf_text(render_pdf(samples.consumer_invoice(), render))

    assert "Léa Dubois" in text and "France" in text
    assert "VAT 20% $19.00 $3.80" in text and "Total $22.80" in text
    assert "DUE Payment due by Mar 8, 2026. It will be charged to Visa •••• 4242." in text
    assert "Amount due $22.80" in text
    assert "Paid on" not in text and "Reverse charge" not in text


def test_us_customer_pays_no_eu_vat_and_is_told_why(render: HtmlRenderer) -> None:
    text = pdf_text(render_pdf(samples.export_invoice(), render))

    assert "Lakeside Imaging LLC" in text and "United States" in text and "Tax ID 12-3456789" in text
    assert "Not subject to EU VAT 0% $1,900.00 $0.00" in text
    assert "place of supply outside the EU" in text
    assert "American Express •••• 0005" in text


def test_each_vat_rate_has_its_own_row(render: HtmlRenderer) -> None:
    renewal = samples.renewal_invoice()
    ebook = Line("Reading guide (e-book)", LineKind.ADDON, 1, 1000, 1000, TaxCategory.STANDARD, 700)
    two_rates = dataclasses.replace(
        renewal,
        lines=(*renewal.lines, ebook),
        tax_lines=(TaxLine.standard(1900, 11900, 2261), TaxLine.standard(700, 1000, 70)),
        subtotal_cents=12900,
        tax_cents=2331,
        total_cents=15231,
    )

    text = pdf_text(render_pdf(two_rates, render))

    assert "VAT 19% $119.00 $22.61" in text and "VAT 7% $10.00 $0.70" in text
    assert "Total $152.31" in text


def test_logo_is_drawn_only_when_the_seller_has_one(render: HtmlRenderer) -> None:
    invoice = samples.renewal_invoice()
    without_logo = dataclasses.replace(invoice, seller=dataclasses.replace(invoice.seller, logo=None))

    assert _drawn_objects(render_pdf(invoice, render)) == _drawn_objects(render_pdf(without_logo, render)) + 1


def _drawn_objects(pdf: bytes) -> int:
    xobjects = PdfReader(BytesIO(pdf)).pages[0]["/Resources"].get("/XObject")
    return len(xobjects.get_object()) if xobjects else 0


def test_names_are_printed_as_text_not_markup(render: HtmlRenderer) -> None:
    invoice = samples.renewal_invoice()
    sneaky = dataclasses.replace(invoice.buyer, company='<img src="http://example.com/x.png"> & Co')

    text = pdf_text(render_pdf(dataclasses.replace(invoice, buyer=sneaky), render))

    assert '<img src="http://' in text and 'example.com/x.png"> & Co' in text  # wrapped, as printed


def test_same_document_gives_identical_bytes(render: HtmlRenderer) -> None:
    first = render_pdf(samples.proration_invoice(), render)
    again = render_pdf(samples.proration_invoice(), render)
    other = render_pdf(dataclasses.replace(samples.proration_invoice(), number="DP-2026-000058"), render)

    assert first == again
    assert other != first


RENDER_IN_FRESH_PROCESS = """
import hashlib, sys
from jinja2 import Environment, FileSystemLoader, select_autoescape
from dicomportal import resource_dir
from dicomportal.documents import jinja_renderer, render_pdf, samples
env = Environment(loader=FileSystemLoader(resource_dir("templates")), autoescape=select_autoescape())
sys.stdout.write(hashlib.sha256(render_pdf(samples.credit_note(), jinja_renderer(env))).hexdigest())
"""


def test_another_process_renders_the_same_bytes(render: HtmlRenderer) -> None:
    """A fresh interpreter (new hash seed, new font cache, later clock) prints the same file."""
    here = hashlib.sha256(render_pdf(samples.credit_note(), render)).hexdigest()
    there = subprocess.run(
        [sys.executable, "-c", RENDER_IN_FRESH_PROCESS],
        capture_output=True,
        text=True,
        check=True,
        timeout=120,
    ).stdout

    assert there == here


def test_invoice_dates_are_the_documents_not_the_clock(render: HtmlRenderer) -> None:
    reader = PdfReader(BytesIO(render_pdf(samples.credit_note(), render)))

    assert reader.metadata is not None
    assert reader.metadata["/CreationDate"] == reader.metadata["/ModDate"] == "D:20260309000000+00'00'"
    xmp = reader.xmp_metadata
    assert xmp is not None
    assert xmp.xmp_create_date.date() == date(2026, 3, 9)
    assert xmp.pdf_producer == reader.metadata["/Producer"]  # PDF/A: XMP and info dictionary agree


class _CountingHandler(BaseHTTPRequestHandler):
    hits: list[str] = []

    def do_GET(self) -> None:
        self.hits.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def loopback_server() -> Iterator[str]:
    """An HTTP server on 127.0.0.1 that counts requests: a fetch would show up here."""
    _CountingHandler.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _CountingHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def _template_with(html: str) -> HtmlRenderer:
    def render(template_name: str, context: Mapping[str, Any], /) -> str:
        return html

    return render


@pytest.mark.parametrize(
    "reference",
    [
        '<img src="http://example.com/logo.png">',
        '<link rel="stylesheet" href="https://example.com/evil.css">',
        '<style>@font-face { font-family: X; src: url("http://example.com/font.ttf") }</style>'
        '<p style="font-family: X">x',
        '<img src="file:///etc/passwd">',
        '<img src="../model.py">',
    ],
)
def test_rendering_refuses_any_url_but_our_own_assets(reference: str) -> None:
    with pytest.raises(ResourceRefused):
        render_pdf(samples.renewal_invoice(), _template_with(f"<html><body>{reference}</body></html>"))


def test_a_remote_image_is_never_requested(loopback_server: str) -> None:
    html = f'<html><body><img src="{loopback_server}/logo.png"><img src="http://example.com/x.png"></body></html>'

    with pytest.raises(ResourceRefused, match=r"127\.0\.0\.1"):
        render_pdf(samples.renewal_invoice(), _template_with(html))

    assert _CountingHandler.hits == []


def test_our_templates_render_with_their_own_assets_only(render: HtmlRenderer) -> None:
    """Stylesheet, fonts and the logo resolve inside the package: no ResourceRefused, fonts embedded."""
    reader = PdfReader(BytesIO(render_pdf(samples.renewal_invoice(), render)))
    fonts = {font.get_object()["/BaseFont"] for font in reader.pages[0]["/Resources"]["/Font"].values()}

    assert {name.split("+", 1)[1] for name in fonts} == {"Document-Sans", "Document-Sans-Bold"}


def test_every_sample_renders(render: HtmlRenderer) -> None:
    for name, document in samples.all_samples().items():
        assert isinstance(document, Document)
        assert render_pdf(document, render, factur_x=False).startswith(b"%PDF-"), name


def test_a_long_invoice_runs_onto_more_pages_with_headers_and_page_numbers(render: HtmlRenderer) -> None:
    usage = tuple(
        Line(f"Study upload #{n}", LineKind.OVERAGE, 1, 100, 100, TaxCategory.STANDARD, 1900)
        for n in range(1, 61)
    )
    long_invoice = dataclasses.replace(
        samples.renewal_invoice(),
        lines=usage,
        tax_lines=(TaxLine.standard(1900, 6000, 1140),),
        subtotal_cents=6000,
        tax_cents=1140,
        total_cents=7140,
    )

    reader = PdfReader(BytesIO(render_pdf(long_invoice, render)))
    pages = [" ".join(page.extract_text().split()) for page in reader.pages]

    assert len(pages) >= 2
    assert all(
        f"Invoice DP-2026-000042 · Page {n} of {len(pages)}" in text for n, text in enumerate(pages, start=1)
    )
    assert all("DESCRIPTION QTY UNIT PRICE VAT AMOUNT" in text for text in pages[:-1])  # header repeats
    assert "Study upload #60" in " ".join(pages) and "Total $71.40" in pages[-1]
