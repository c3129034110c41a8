"""The customer's account dashboard."""

from __future__ import annotations

from flask import Blueprint, render_template
from flask_login import login_required

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("/")
@login_required
def dashboard() -> str:
    """The signed-in customer's home: plan, billing and settings."""
    return render_template("account/dashboard.html")
