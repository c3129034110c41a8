"""The help centre: articles in ``articles/*.md``, rendered once per process and searched in memory."""

from dicomportal.help.centre import (
    Article,
    ArticleError,
    ArticleNotFound,
    HelpCentre,
    SearchResult,
    help_centre,
    parse_article,
    render_markdown,
)

__all__ = [
    "Article",
    "ArticleError",
    "ArticleNotFound",
    "HelpCentre",
    "SearchResult",
    "help_centre",
    "parse_article",
    "render_markdown",
]
