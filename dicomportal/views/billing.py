"""Subscribing and paying. (The subscribe flow is being built; this page says so meanwhile.)"""

from __future__ import annotations

from flask import Blueprint, abort, render_template, request
from flask_login import login_required
from sqlalchemy import select

from dicomportal.extensions import db
from dicomportal.models import Interval, Plan

bp = Blueprint("billing", __name__)


@bp.get("/subscribe/<plan_code>")
@login_required
def subscribe(plan_code: str) -> str:
    """The subscribe step for one plan and interval."""
    plan = db.session.scalar(select(Plan).where(Plan.code == plan_code, Plan.active.is_(True)))
    interval = request.args.get("interval", Interval.MONTH.value)
    if plan is None or interval not in {i.value for i in Interval}:
        abort(404)
    return render_template("billing/subscribe_soon.html", plan=plan, interval=interval)
