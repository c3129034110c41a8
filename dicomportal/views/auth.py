"""Sign up, log in, log out, password change and reset. (Filled in by the accounts work.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("auth", __name__, url_prefix="/auth")


@bp.route("/login", methods=["GET", "POST"])
def login() -> str:
    """Log in (stub)."""
    return "login"


@bp.route("/signup", methods=["GET", "POST"])
def signup() -> str:
    """Sign up (stub)."""
    return "signup"


@bp.post("/logout")
def logout() -> str:
    """Log out (stub)."""
    return "logout"
