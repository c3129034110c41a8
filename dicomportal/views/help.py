"""The help centre: the article list with search (/help), and one article (/help/<slug>)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, make_response, render_template, request

from dicomportal.help import ArticleNotFound, help_centre
from dicomportal.views._htmx import render, wants_partial
from dicomportal.views._shared_pages import SharedPages

bp = Blueprint("help", __name__, url_prefix="/help")
pages = SharedPages("help")  # the articles are fixed for the life of the process


@bp.get("/")
def index() -> Response:
    """Every article in order, or those matching ``?q=`` (only the results for htmx)."""
    query = request.args.get("q", "").strip()

    def page() -> Response:
        results = help_centre().search(query)
        return render("help/index.html", "help/_search_results.html", query=query, results=results)

    return pages.serve(("index", query, wants_partial()), page)


@bp.get("/<slug>")
def article(slug: str) -> Response:
    """One help article, with related articles and a way back."""
    centre = help_centre()
    try:
        found = centre.get(slug)
    except ArticleNotFound:
        abort(404)
    return pages.serve(
        ("article", slug),
        lambda: make_response(
            render_template("help/article.html", article=found, related=centre.related(found))
        ),
    )
