"""The help centre. (Filled in by the help-centre work.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("help", __name__, url_prefix="/help")


@bp.get("/")
def index() -> str:
    """The help centre (stub)."""
    return "help"
