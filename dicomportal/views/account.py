"""The customer's account: dashboard and password."""

from __future__ import annotations

from flask import Blueprint, Response, flash, render_template, url_for
from flask_login import current_user, login_required

from dicomportal.accounts import AccountError, change_password
from dicomportal.billing.summary import account_summary
from dicomportal.mail import commit_and_deliver
from dicomportal.views._htmx import redirect_after_post
from dicomportal.views.forms import render_form, show_error
from dicomportal.views.forms.accounts import ChangePasswordForm

bp = Blueprint("account", __name__, url_prefix="/account")


@bp.get("/")
@login_required
def dashboard() -> str:
    """The signed-in customer's home: plan, card on file, recent invoices and settings."""
    return render_template("account/dashboard.html", summary=account_summary(current_user))


@bp.route("/password", methods=["GET", "POST"])
@login_required
def password() -> Response | tuple[str, int]:
    """Change the password; the current one proves it is really the customer."""
    form = ChangePasswordForm()
    if form.validate_on_submit():
        try:
            change_password(current_user, form.current_password.data, form.password.data)
        except AccountError as exc:
            show_error(form, exc)
        else:
            commit_and_deliver()  # this browser's session stays; every other one has ended
            flash("Your password was changed. We've emailed you a confirmation.", "success")
            return redirect_after_post(url_for("account.dashboard"))
    return render_form("account/password.html", form)
