"""Document -> HTML (through an injected template port) -> PDF/A-3 (WeasyPrint) -> Factur-X.

The package never looks templates up itself: the app hands it an :class:`HtmlRenderer`, usually
``jinja_renderer(app.jinja_env)``, so services stay free of ``render_template`` and of requests.
While WeasyPrint lays the page out it may only read the files of ``assets/`` (stylesheet, fonts,
default logo) and ``data:`` URLs; any other URL (http, https, ftp, a file elsewhere) stops the
rendering with :class:`ResourceRefused`, so a document never depends on, or leaks to, the network.
"""

from __future__ import annotations

import hashlib
import mimetypes
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlsplit
from urllib.request import url2pathname

import weasyprint
from jinja2 import Environment
from weasyprint.urls import FatalURLFetchingError, URLFetcher, URLFetcherResponse

from dicomportal.documents import pdfa
from dicomportal.documents.facturx_xml import build_xml
from dicomportal.documents.model import Document, DocumentKind, Logo
from dicomportal.documents.present import present

ASSETS = Path(__file__).resolve().parent / "assets"
TEMPLATES = {
    DocumentKind.INVOICE: "documents/invoice.html",
    DocumentKind.CREDIT_NOTE: "documents/credit_note.html",
}


class HtmlRenderer(Protocol):
    """The port through which documents are rendered: template name + context -> HTML."""

    def __call__(self, template_name: str, context: Mapping[str, Any], /) -> str: ...


class ResourceRefused(FatalURLFetchingError):  # type: ignore[misc]
    """A template or image asked for a resource that is not one of ours; nothing was fetched."""


def jinja_renderer(env: Environment) -> HtmlRenderer:
    """Adapt a Jinja environment (e.g. ``app.jinja_env``) to the :class:`HtmlRenderer` port."""

    def render(template_name: str, context: Mapping[str, Any], /) -> str:
        return env.get_template(template_name).render(context)

    return render


def default_logo() -> Logo:
    """The logo shipped with the package, for sellers who have not configured their own."""
    return Logo((ASSETS / "logo.svg").read_bytes(), "image/svg+xml")


def render_html(document: Document, render: HtmlRenderer) -> str:
    """The document's HTML from our template for its kind (invoice or credit note)."""
    return render(TEMPLATES[document.kind], {"document": document, "view": present(document)})


def render_pdf(document: Document, render: HtmlRenderer, *, factur_x: bool = True) -> bytes:
    """The printable PDF of ``document``; with ``factur_x`` (the default) a PDF/A-3 carrying its
    EN 16931 XML. The same document always gives the same bytes (no clock, no random identifier).

    :raises ResourceRefused: the HTML referenced a URL outside our own assets.
    """
    fetcher = OwnAssetsFetcher()
    html = weasyprint.HTML(
        string=render_html(document, render), base_url=ASSETS.as_uri() + "/", url_fetcher=fetcher
    )
    identifier = hashlib.sha256(f"{document.kind.value}:{document.number}".encode()).hexdigest()[:32]
    pdf: bytes = html.write_pdf(pdf_variant="pdf/a-3b", pdf_identifier=identifier.encode("ascii"))
    if not factur_x:
        return pdf
    return pdfa.embed_factur_x(pdf, build_xml(document), document)


class OwnAssetsFetcher(URLFetcher):  # type: ignore[misc]
    """WeasyPrint's URL fetcher, limited to ``assets/`` and ``data:`` URLs."""

    def __init__(self, root: Path = ASSETS) -> None:
        super().__init__(fail_on_errors=True)  # a refusal stops the rendering, not just a warning
        self.root = root.resolve()

    def fetch(self, url: str, headers: Mapping[str, str] | None = None) -> URLFetcherResponse:
        """Serve our own asset or a ``data:`` URL; refuse anything else without opening it."""
        parts = urlsplit(url)
        if parts.scheme == "data":
            return super().fetch(url, headers)
        if parts.scheme == "file" and not parts.netloc:
            path = Path(url2pathname(parts.path)).resolve()
            if path.is_relative_to(self.root) and path.is_file():
                media_type = mimetypes.guess_type(path.name)[0] or "application/octet-stream"
                return URLFetcherResponse(url, path.read_bytes(), {"Content-Type": media_type})
        raise ResourceRefused(f"documents may only use their own assets, not {url}")
