"""Documents are pure: no app, no database. Templates come from the repository's templates/."""

from __future__ import annotations

import pytest
from jinja2 import Environment, FileSystemLoader, select_autoescape

from dicomportal import resource_dir
from dicomportal.documents import HtmlRenderer, jinja_renderer


@pytest.fixture(scope="session")
def render() -> HtmlRenderer:
    """The template port as the app wires it, over a bare Jinja environment."""
    env = Environment(loader=FileSystemLoader(resource_dir("templates")), autoescape=select_autoescape())
    return jinja_renderer(env)
