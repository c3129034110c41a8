"""Billing details: who invoices are addressed to (name, company, address, tax ID)."""

from __future__ import annotations

from flask import Response, flash, render_template, request, url_for
from flask_login import current_user, login_required

from dicomportal.billing import profiles
from dicomportal.views._htmx import redirect_after_post, wants_partial
from dicomportal.views.billing import bp
from dicomportal.views.forms.billing import BillingDetailsForm


@bp.route("/details", methods=["GET", "POST"])
@login_required
def details() -> Response | tuple[str, int]:
    """Change the billing details; an invalid field is explained in place and nothing is saved."""
    profile = current_user.billing_profile
    form = BillingDetailsForm(obj=profile, data=None if profile else {"name": current_user.name})
    if request.form.get("check") == "tax_id":
        return _checked_tax_id(form)
    if form.validate_on_submit():
        profiles.save_billing_details(current_user, form.details())
        flash("Your billing details were saved. Invoices issued from now on use them.", "success")
        return redirect_after_post(url_for("account.dashboard"))
    template = "billing/_details_form.html" if wants_partial() else "billing/details.html"
    return render_template(template, form=form), 422 if form.errors else 200


def _checked_tax_id(form: BillingDetailsForm) -> tuple[str, int]:
    """htmx, when the tax ID field changes: the form again with that field's verdict only (the
    customer may not have reached the other fields yet). Nothing is saved."""
    form.validate_on_submit()
    for field in form:
        if field.name not in ("tax_id", "csrf_token"):
            field.errors = []
    return render_template("billing/_details_form.html", form=form), 422 if form.tax_id.errors else 200
