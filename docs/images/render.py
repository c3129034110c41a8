"""Regenerate the invoice images of this folder: python docs/images/render.py (needs pdftoppm).

Renders the sample renewal invoice, proration invoice and credit note of
dicomportal/documents/samples.py to PDF, then each first page to PNG at 110 dpi.
"""

from __future__ import annotations

import subprocess
import tempfile
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape

from dicomportal import resource_dir
from dicomportal.documents import jinja_renderer, render_pdf, samples

HERE = Path(__file__).resolve().parent
IMAGES = {
    "invoice-renewal": samples.renewal_invoice,
    "invoice-proration": samples.proration_invoice,
    "credit-note": samples.credit_note,
}


def main() -> None:
    """Write invoice-renewal.png, invoice-proration.png and credit-note.png next to this script."""
    env = Environment(loader=FileSystemLoader(resource_dir("templates")), autoescape=select_autoescape())
    render = jinja_renderer(env)
    with tempfile.TemporaryDirectory() as tmp:
        for name, sample in IMAGES.items():
            pdf = Path(tmp) / f"{name}.pdf"
            pdf.write_bytes(render_pdf(sample(), render))
            subprocess.run(
                ["pdftoppm", "-png", "-r", "110", "-singlefile", str(pdf), str(HERE / name)], check=True
            )
            print(HERE / f"{name}.png")


if __name__ == "__main__":
    main()
