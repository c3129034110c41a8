"""Embed the Factur-X XML into the PDF/A-3 that WeasyPrint wrote, with the ``factur-x`` package.

``factur-x`` stamps the current time into the PDF (info dictionary, XMP packet, the attachment's
modification date) and names "pypdf" as the XMP producer while the info dictionary names
WeasyPrint. One more pypdf pass replaces those times with the document's issue date and makes
the two producers agree (PDF/A wants the XMP and the info dictionary to match), so the same
document always yields the same bytes.
"""

from __future__ import annotations

from datetime import UTC, datetime, time
from io import BytesIO
from typing import Any

import facturx
from lxml import etree
from pypdf import PdfWriter
from pypdf.generic import NameObject, StreamObject, TextStringObject

from dicomportal.documents.model import Document

LEVEL = "en16931"
XMP = {
    "xmp": "http://ns.adobe.com/xap/1.0/",
    "pdf": "http://ns.adobe.com/pdf/1.3/",
}


def embed_factur_x(pdf: bytes, xml: bytes, document: Document) -> bytes:
    """``pdf`` with ``factur-x.xml`` attached, the Factur-X XMP metadata, and no clock in it."""
    title = f"{'Credit note' if document.is_credit_note else 'Invoice'} {document.number}"
    metadata = {
        "author": document.seller.name,
        "keywords": "Factur-X, EN 16931, " + ("credit note" if document.is_credit_note else "invoice"),
        "title": f"{document.seller.name}: {title}",
        "subject": f"{title} issued on {document.issue_date.isoformat()} by {document.seller.name}",
    }
    with_xml: bytes = facturx.generate_from_binary(
        pdf,
        xml,
        flavor="factur-x",
        level=LEVEL,
        check_xsd=False,  # build_xml has checked it
        pdf_metadata=metadata,
        lang=document.locale.replace("_", "-"),
        xmp_compression=False,
    )
    return _restamp(with_xml, datetime.combine(document.issue_date, time(), tzinfo=UTC))


def _restamp(pdf: bytes, moment: datetime) -> bytes:
    writer = PdfWriter(clone_from=BytesIO(pdf))
    writer.pdf_header = pdf[: pdf.index(b"\n")].decode("ascii")  # keep factur-x's version (%PDF-1.6)
    pdf_date = moment.strftime("D:%Y%m%d%H%M%S+00'00'")
    producer = str(writer.metadata.get("/Producer", "WeasyPrint")) if writer.metadata else "WeasyPrint"
    writer.add_metadata({"/CreationDate": pdf_date, "/ModDate": pdf_date, "/Producer": producer})
    for spec in _embedded_files(writer):
        spec["/EF"].get_object()["/F"].get_object()["/Params"][NameObject("/ModDate")] = TextStringObject(
            pdf_date
        )
    metadata = writer._root_object["/Metadata"].get_object()
    assert isinstance(metadata, StreamObject)  # factur-x has just written it
    metadata.set_data(_restamped_xmp(metadata.get_data(), moment, producer))
    out = BytesIO()
    writer.write(out)
    return out.getvalue()


def _embedded_files(writer: PdfWriter) -> list[Any]:
    names: Any = writer._root_object["/Names"].get_object()
    pairs = names["/EmbeddedFiles"].get_object()["/Names"]  # [name, file spec, name, file spec...]
    return [pairs[i + 1].get_object() for i in range(0, len(pairs), 2)]


def _restamped_xmp(packet: bytes, moment: datetime, producer: str) -> bytes:
    """The XMP packet with our dates and producer; the ``<?xpacket?>`` wrapper is kept as it was."""
    start, end = packet.index(b"<x:xmpmeta"), packet.rindex(b"</x:xmpmeta>") + len(b"</x:xmpmeta>")
    root = etree.fromstring(packet[start:end])
    stamp = moment.strftime("%Y-%m-%dT%H:%M:%S+00:00")
    for tag in ("xmp:CreateDate", "xmp:ModifyDate", "xmp:MetadataDate"):
        for element in root.iterfind(f".//{tag}", XMP):
            element.text = stamp
    for element in root.iterfind(".//pdf:Producer", XMP):
        element.text = producer
    restamped: bytes = etree.tostring(root, encoding="utf-8")
    return packet[:start] + restamped + packet[end:]
