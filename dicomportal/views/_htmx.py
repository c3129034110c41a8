"""The htmx conventions (docs/architecture.md#9-htmx-conventions), in one place for every blueprint.

htmx announces itself with ``HX-*`` request headers (https://htmx.org/reference/#request_headers);
these few lines read the three this app needs, which is all an htmx extension would add.
"""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, redirect, render_template, request


def _header_is_true(name: str) -> bool:
    return request.headers.get(name, "").lower() == "true"


def is_htmx() -> bool:
    """True when htmx sent the request (``HX-Request: true``), whatever it will do with the answer."""
    return _header_is_true("HX-Request")


def wants_partial() -> bool:
    """True for an htmx request that will swap a fragment (not a history restore or a boost)."""
    return (
        is_htmx() and not _header_is_true("HX-History-Restore-Request") and not _header_is_true("HX-Boosted")
    )


def render(page: str, partial: str, **context: Any) -> Response:
    """One URL, two shapes: the full ``page``, or only ``partial`` for htmx. Adds ``Vary: HX-Request``."""
    template = partial if wants_partial() else page
    response = make_response(render_template(template, **context))
    response.vary.add("HX-Request")
    return response


def redirect_after_post(location: str) -> Response:
    """303 for plain forms; ``HX-Redirect`` so htmx does a full navigation instead of a swap."""
    if is_htmx():
        return Response(status=204, headers={"HX-Redirect": location})
    return redirect(location, code=303)  # type: ignore[return-value]
