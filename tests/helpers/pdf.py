"""Reading PDFs back in the tests."""

from __future__ import annotations

from io import BytesIO

from pypdf import PdfReader


def pdf_text(pdf: bytes) -> str:
    """All text of a PDF as a reader (or a search engine) extracts it, whitespace collapsed."""
    reader = PdfReader(BytesIO(pdf))
    return " ".join(" ".join(page.extract_text().split()) for page in reader.pages)
