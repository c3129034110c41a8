"""Embed the Factur-X XML into the PDF/A-3 that WeasyPrint wrote (the ``factur-x`` package)."""

from __future__ import annotations

import facturx

from dicomportal.documents.model import Document


def embed_factur_x(pdf: bytes, xml: bytes, document: Document) -> bytes:
    """The PDF with ``factur-x.xml`` attached and the Factur-X XMP metadata."""
    result: bytes = facturx.generate_from_binary(pdf, xml, flavor="factur-x", level="en16931", check_xsd=False)
    return result
