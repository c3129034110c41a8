"""The rules of docs/architecture.md#2-layout-and-layers that import-linter cannot see (it sees
modules, not the names taken from them): services never read the request or render pages; emails
render through one port (mail/outbox.py) and documents through the one they are given."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "dicomportal"
SERVICES = ("accounts", "billing", "documents", "help", "mail", "studies", "models", "jobs.py")
WEB_ONLY = {"request", "session", "g", "render_template", "render_template_string", "redirect", "flash"}
EMAIL_PORT = PACKAGE / "mail" / "outbox.py"  # renders templates/email/*, nothing else


def service_modules() -> list[Path]:
    files: list[Path] = []
    for name in SERVICES:
        path = PACKAGE / name
        files.extend(sorted(path.rglob("*.py")) if path.is_dir() else [path])
    return files


def web_names_used(source: str) -> set[str]:
    """Names of Flask's request- and page-level API that ``source`` takes from ``flask``."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.ImportFrom) and node.module == "flask":
            found |= {alias.name for alias in node.names} & WEB_ONLY
        elif (
            isinstance(node, ast.Attribute)
            and isinstance(node.value, ast.Name)
            and node.value.id == "flask"
            and node.attr in WEB_ONLY
        ):
            found.add(node.attr)
    return found


@pytest.mark.parametrize("module", service_modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_services_never_touch_the_request_or_render_pages(module: Path) -> None:
    used = web_names_used(module.read_text())
    if module == EMAIL_PORT:
        used -= {"render_template"}
    assert used == set(), f"{module.relative_to(PACKAGE)} uses {sorted(used)} from flask"


def test_the_check_sees_what_it_must_refuse() -> None:
    """The rule above would catch a service that read the request or rendered a page."""
    assert web_names_used("from flask import current_app, request\n") == {"request"}
    assert web_names_used("import flask\nflask.render_template('x.html')\n") == {"render_template"}
    assert web_names_used("from flask import current_app\n") == set()
