"""The pricing page. (Filled in by the catalog work.)"""

from __future__ import annotations

from flask import Blueprint

bp = Blueprint("plans", __name__)


@bp.get("/pricing")
def pricing() -> str:
    """The pricing page (stub)."""
    from flask import render_template_string

    return render_template_string("{% extends 'base.html' %}{% block content %}Pricing{% endblock %}")
