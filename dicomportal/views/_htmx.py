"""The htmx conventions (docs/architecture.md#9-htmx-conventions), in one place for every blueprint."""

from __future__ import annotations

from typing import Any

from flask import Response, make_response, redirect, render_template, request


def wants_partial() -> bool:
    """True for an htmx request that will swap a fragment (not a history restore or a boost)."""
    hx = getattr(request, "htmx", None)
    return hx is not None and bool(hx) and not hx.history_restore_request and not hx.boosted


def render(page: str, partial: str, **context: Any) -> Response:
    """One URL, two shapes: the full ``page``, or only ``partial`` for htmx. Adds ``Vary: HX-Request``."""
    template = partial if wants_partial() else page
    response = make_response(render_template(template, **context))
    response.vary.add("HX-Request")
    return response


def redirect_after_post(location: str) -> Response:
    """303 for plain forms; ``HX-Redirect`` so htmx does a full navigation instead of a swap."""
    if getattr(request, "htmx", False):
        return Response(status=204, headers={"HX-Redirect": location})
    return redirect(location, code=303)  # type: ignore[return-value]
