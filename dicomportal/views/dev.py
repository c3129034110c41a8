"""Demo-only tools: the mail outbox. Every route answers 404 unless DEMO_MODE is on."""

from __future__ import annotations

from flask import Blueprint, abort, current_app

bp = Blueprint("dev", __name__, url_prefix="/dev")


@bp.before_request
def demo_only() -> None:
    if not current_app.config["DEMO_MODE"]:
        abort(404)


@bp.get("/outbox")
def outbox() -> str:
    """The demo mail outbox (stub)."""
    return "outbox"
