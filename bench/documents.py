"""Median time to render one invoice PDF (HTML -> WeasyPrint PDF/A-3 -> Factur-X), in-process.

    .venv/bin/python bench/documents.py [--runs 30]

Prints the medians of the full pipeline and of its parts, and the load average before and after,
as a Markdown section to paste into bench/RESULTS.md. No database, no app: the pure documents
package over a bare Jinja environment, as the billing code will call it at finalization.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime

import weasyprint
from jinja2 import Environment, FileSystemLoader, select_autoescape

from dicomportal import resource_dir
from dicomportal.documents import build_xml, jinja_renderer, render_html, render_pdf, samples


def median_ms(action: Callable[[], object], runs: int) -> tuple[float, float]:
    """Median wall time and median CPU time of ``action`` over ``runs`` calls, after a warm-up call.
    CPU time is what to compare on a shared machine: other processes inflate wall time, not it."""
    action()
    wall, cpu = [], []
    for _ in range(runs):
        start, start_cpu = time.perf_counter(), time.process_time()
        action()
        wall.append(time.perf_counter() - start)
        cpu.append(time.process_time() - start_cpu)
    return statistics.median(wall) * 1000, statistics.median(cpu) * 1000


def main() -> None:
    """Measure and print the Markdown section."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=30)
    runs = parser.parse_args().runs
    render = jinja_renderer(
        Environment(loader=FileSystemLoader(resource_dir("templates")), autoescape=select_autoescape())
    )
    invoice = samples.renewal_invoice()
    load_before = os.getloadavg()
    rows = [
        (
            "invoice PDF with Factur-X (the whole pipeline)",
            median_ms(lambda: render_pdf(invoice, render), runs),
        ),
        (
            "invoice PDF without Factur-X",
            median_ms(lambda: render_pdf(invoice, render, factur_x=False), runs),
        ),
        ("HTML only (template + Babel)", median_ms(lambda: render_html(invoice, render), runs)),
        ("Factur-X XML only (build + XSD check)", median_ms(lambda: build_xml(invoice), runs)),
    ]
    load_after = os.getloadavg()
    print(f"## {datetime.now(UTC):%Y-%m-%d %H:%M} UTC: invoice PDF rendering (bench/documents.py)\n")
    print(
        f"Machine: {os.cpu_count()} CPUs, Python {platform.python_version()}, "
        f"WeasyPrint {weasyprint.__version__}, "
        f"{platform.platform()}. {runs} runs each after a warm-up, one process, sample renewal invoice "
        f"(3 lines, 1 page). Load average before: {' '.join(f'{x:.2f}' for x in load_before)}, "
        f"after: {' '.join(f'{x:.2f}' for x in load_after)}.\n"
    )
    print("| step | median wall ms | median CPU ms |\n| --- | ---: | ---: |")
    for label, (wall, cpu) in rows:
        print(f"| {label} | {wall:.1f} | {cpu:.1f} |")
    print("\nCommand: `.venv/bin/python bench/documents.py`")


if __name__ == "__main__":
    main()
