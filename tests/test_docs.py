"""The design the code cites is in the repository: every citation of a ``docs/`` page (in the package,
the tests, the migrations, pyproject.toml, README and the docs themselves) names a page that exists
and, with ``#anchor``, a heading of it; every relative link in README and docs/ resolves; nothing
cites the old design files that lived outside the repository."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TEXT_SUFFIXES = {".py", ".toml", ".md", ".html", ".txt", ".cfg", ".ini", ".mako", ".js", ".css"}
CITING = ("dicomportal", "tests", "migrations", "docs", "pyproject.toml", "README.md")

CITATION = re.compile(r"(?<![\w/.])docs/([\w./-]+?\.md)(?:#([\w-]+))?")
MARKDOWN_LINK = re.compile(r"\]\(([^)\s]+)\)")
# Built from parts so this file does not cite them itself.
OUTSIDE_DESIGN = re.compile("|".join(["ARCHITECTURE" + r"\.md", "LOCALSTRIPE" + r"\.md", "STYLE" + r"\.md"]))
DESIGN_CARD = re.compile("design" + r"\s+card", re.IGNORECASE)


def github_anchor(heading: str) -> str:
    """The anchor GitHub gives a heading: lowercase, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading.strip())  # a link keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower())
    return text.replace(" ", "-")


def anchors_of(page: Path) -> set[str]:
    """Every heading anchor of a markdown page (a repeated heading gets -1, -2, ... as on GitHub)."""
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in page.read_text().splitlines():
        if line.lstrip().startswith(("```", "~~~")):
            fenced = not fenced
            continue
        match = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if fenced or not match:
            continue
        anchor = github_anchor(match.group(1))
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        found.add(anchor if count == 0 else f"{anchor}-{count}")
    return found


def text_files() -> Iterator[Path]:
    for name in CITING:
        path = ROOT / name
        candidates = [path] if path.is_file() else sorted(path.rglob("*"))
        for file in candidates:
            if file.is_file() and file.suffix in TEXT_SUFFIXES and "__pycache__" not in file.parts:
                yield file


def lines_of(file: Path) -> Iterator[tuple[str, str]]:
    for number, line in enumerate(file.read_text(errors="replace").splitlines(), start=1):
        yield f"{file.relative_to(ROOT)}:{number}", line


def problem_with(page: Path, anchor: str | None) -> str | None:
    """Why a link to ``page`` (with an optional ``#anchor``) does not resolve, or None."""
    if not page.exists():
        return "no such file"
    if anchor and page.suffix == ".md" and anchor not in anchors_of(page):
        return f"no heading with anchor #{anchor}"
    return None


def test_every_cited_docs_page_and_anchor_exists() -> None:
    broken = []
    for file in text_files():
        for where, line in lines_of(file):
            for page, anchor in CITATION.findall(line):
                problem = problem_with(ROOT / "docs" / page, anchor or None)
                if problem:
                    broken.append(f"{where}: docs/{page}{'#' + anchor if anchor else ''}: {problem}")
    assert broken == []


def test_every_relative_link_in_readme_and_docs_resolves() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    broken = []
    for file in pages:
        for where, line in lines_of(file):
            for target in MARKDOWN_LINK.findall(line):
                if re.match(r"[a-z][a-z0-9+.-]*:", target):  # https:, mailto:
                    continue
                path, _, anchor = target.partition("#")
                page = (file.parent / path).resolve() if path else file
                problem = problem_with(page, anchor or None)
                if problem:
                    broken.append(f"{where}: {target}: {problem}")
    assert broken == []


def test_nothing_cites_the_design_files_that_lived_outside_the_repository() -> None:
    stale = [
        f"{where}: {line.strip()}"
        for file in text_files()
        for where, line in lines_of(file)
        if OUTSIDE_DESIGN.search(line) or DESIGN_CARD.search(line)
    ]
    assert stale == []


def test_anchors_follow_githubs_rule() -> None:
    assert github_anchor("6. Charging safely") == "6-charging-safely"
    assert github_anchor("5. Money, time, tax and numbers") == "5-money-time-tax-and-numbers"
    assert github_anchor("`dicomportal check`") == "dicomportal-check"
    assert github_anchor("What a customer may do (view, upload)") == "what-a-customer-may-do-view-upload"
    assert "6-charging-safely" in anchors_of(ROOT / "docs" / "architecture.md")
    assert "confirmation-rules" in anchors_of(ROOT / "docs" / "payments.md")
