"""The customer's studies: upload (files, a folder or a zip), list with the storage meter, one
study's series, delete, and download everything as a zip."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    make_response,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_login import current_user, login_required
from werkzeug.exceptions import NotFound, RequestEntityTooLarge

from dicomportal import clock
from dicomportal.billing import addons
from dicomportal.billing.errors import BillingError
from dicomportal.billing.money import format_day
from dicomportal.extensions import csrf
from dicomportal.models import SubscriptionAddOn
from dicomportal.studies import credits
from dicomportal.studies.errors import StudiesUnavailable, StudyNotFound, UploadFailed, UploadRefused
from dicomportal.studies.export import export_filename, export_studies_zip
from dicomportal.studies.ingest import UploadResult, ingest_upload
from dicomportal.studies.library import delete_study, get_study, library, require_access
from dicomportal.studies.quota import format_bytes, remove_storage_addon, storage_meter
from dicomportal.studies.shares import ShareRefused, create_share, revoke_share, shares_of
from dicomportal.studies.unpack import MB, UploadLimits, UploadPart
from dicomportal.views._htmx import redirect_after_post, render, wants_partial

bp = Blueprint("studies", __name__, url_prefix="/studies")
MULTIPART_OVERHEAD = 1 * MB  # boundaries and part headers on top of the files themselves


@bp.app_template_filter("filesize")
def filesize(size: int) -> str:
    """``{{ study.size_bytes | filesize }}`` -> ``12.3 MB``."""
    return format_bytes(size)


@bp.errorhandler(StudiesUnavailable)
def unavailable(exc: StudiesUnavailable) -> tuple[str, int]:
    """No live subscription: say so, with the way back."""
    return render_template("studies/unavailable.html", message=str(exc)), 403


@bp.errorhandler(StudyNotFound)
def not_found(_exc: StudyNotFound) -> Any:
    """Another account's study, or none: the app's ordinary 404 page."""
    return current_app.handle_user_exception(NotFound())


@bp.get("/")
@login_required
def index() -> Response:
    """The customer's studies with the storage meter (partial ``_studies.html`` for htmx)."""
    shelf = library(current_user.id, _page())
    balance = None if wants_partial() else credits.credit_balance(current_user.id)
    return render("studies/index.html", "studies/_studies.html", library=shelf, balance=balance)


@bp.get("/meter")
@login_required
def meter() -> Response:
    """The storage meter alone, for panels that refresh it (``HX-Trigger: storage-changed``)."""
    entitlements = require_access(current_user.id)
    return render(
        "studies/meter.html", "studies/_meter.html", meter=storage_meter(current_user.id, entitlements)
    )


@bp.get("/<int:study_id>")
@login_required
def study(study_id: int) -> str:
    """One study: its series, image counts and sizes, the viewer link and its share links."""
    return render_template(
        "studies/study.html", study=get_study(current_user.id, study_id), **_shares_context(study_id)
    )


def _shares_context(study_id: int, **extra: Any) -> dict[str, Any]:
    return {
        "study_id": study_id,
        "shares": shares_of(current_user.id, study_id),
        "now": clock.now(),
        "max_days": current_app.config["SHARE_LINK_MAX_DAYS"],
        "default_days": current_app.config["SHARE_LINK_DEFAULT_DAYS"],
        **extra,
    }


def _shares_response(study_id: int, message: str, error: str | None = None) -> Response:
    """The share links panel for htmx (with a toast), or back to the study page."""
    if not wants_partial():
        flash(error or message, "error" if error else "success")
        return redirect_after_post(url_for("studies.study", study_id=study_id))
    response = make_response(
        render_template("studies/_shares.html", **_shares_context(study_id, error=error)),
        422 if error else 200,
    )
    if not error:
        response.headers["HX-Trigger"] = json.dumps({"toast": {"message": message, "category": "success"}})
    return response


@bp.post("/<int:study_id>/shares")
@login_required
def share(study_id: int) -> Response:
    """Make a read-only link to the study that expires after the days chosen."""
    days = request.form.get("days", type=int)
    try:
        create_share(current_user.id, study_id, days, current_app.config["SHARE_LINK_MAX_DAYS"])
    except ShareRefused as exc:
        return _shares_response(study_id, "", str(exc))
    return _shares_response(study_id, "Link created. Copy it and send it to whoever should see the study.")


@bp.post("/<int:study_id>/shares/<int:share_id>/revoke")
@login_required
def revoke(study_id: int, share_id: int) -> Response:
    """Stop a link at once; whoever opens it afterwards is refused."""
    revoke_share(current_user.id, study_id, share_id)
    return _shares_response(study_id, "Link revoked: it no longer opens.")


@bp.get("/upload")
@login_required
def upload_form() -> str:
    """The upload page: files, a folder or a zip, with a progress bar (static/js/upload.js)."""
    return render_template("studies/upload.html", **_upload_context())


@bp.post("/upload")
@login_required
@csrf.exempt  # checked below, once the larger body limit for uploads is in place
def upload() -> Response:
    """Store the upload all or nothing; refused uploads re-render the form with the reason."""
    _allow_upload_sized_body()
    try:
        if current_app.config.get("WTF_CSRF_ENABLED", True):
            csrf.protect()
        parts = [UploadPart(f.filename or "", f.stream) for f in request.files.getlist("files") if f.filename]
        result = ingest_upload(current_user.id, parts)
    except RequestEntityTooLarge:
        return _refused(
            f"This upload is over {format_bytes(_limits().max_total_bytes)}. Upload it in parts.", 413
        )
    except UploadRefused as exc:
        return _refused(str(exc), 422)
    except UploadFailed as exc:
        return _refused(str(exc), 503)
    flash(_uploaded_message(result), "success")
    return redirect_after_post(url_for("studies.index"))


@bp.route("/<int:study_id>/delete", methods=["GET", "POST"])
@login_required
def delete(study_id: int) -> Response | str:
    """GET: confirm (works without JavaScript); POST: delete, then the updated list for htmx."""
    if request.method == "GET":
        return render_template("studies/delete.html", study=get_study(current_user.id, study_id))
    deleted = delete_study(current_user.id, study_id)
    message = f"Deleted {deleted.description or 'the study'} ({deleted.image_count} images)."
    if not wants_partial():
        flash(message, "success")
        return redirect_after_post(url_for("studies.index"))
    response = render(
        "studies/index.html", "studies/_studies.html", library=library(current_user.id, _page())
    )
    response.headers["HX-Trigger"] = json.dumps(
        {"toast": {"message": message, "category": "success"}, "storage-changed": True}
    )
    return response


@bp.get("/export.zip")
@login_required
def export() -> Response:
    """Every study as one zip, streamed (the GDPR download)."""
    chunks = export_studies_zip(current_user.id)
    response = Response(stream_with_context(chunks), mimetype="application/zip")
    response.headers["Content-Disposition"] = f'attachment; filename="{export_filename()}"'
    response.headers["Cache-Control"] = "no-store"
    return response


def _page() -> int:
    return request.args.get("page", 1, type=int) or 1


def _limits() -> UploadLimits:
    return UploadLimits.from_config(current_app.config)


def _allow_upload_sized_body() -> None:
    """This route alone takes bodies up to UPLOAD_MAX_MB (and as many parts as files allowed);
    the app-wide MAX_CONTENT_LENGTH stays small for every other route."""
    limits = _limits()
    request.max_content_length = limits.max_total_bytes + MULTIPART_OVERHEAD
    request.max_form_parts = limits.max_files + 100


def _upload_context(**extra: Any) -> dict[str, Any]:
    entitlements = require_access(current_user.id)
    return {
        "limits": _limits(),
        "meter": storage_meter(current_user.id, entitlements),
        "can_upload": entitlements.can_upload,
        **extra,
    }


def _refused(message: str, status: int) -> Response:
    """The upload form again with the reason: the whole page, or the form alone for upload.js."""
    context = _upload_context(error=message)
    if wants_partial():
        response = make_response(render_template("studies/_upload_form.html", **context), status)
        response.vary.add("HX-Request")
        return response
    return make_response(render_template("studies/upload.html", **context), status)


def _uploaded_message(result: UploadResult) -> str:
    studies = len(result.study_ids)
    text = (
        f"Uploaded {studies} {'study' if studies == 1 else 'studies'}: {result.image_count} images, "
        f"{format_bytes(result.size_bytes)}."
    )
    if result.duplicates:
        text += f" {result.duplicates} duplicate files were stored once."
    if result.skipped:
        text += (
            f" Skipped {len(result.skipped)} files that are not part of a study (e.g. {result.skipped[0]})."
        )
    return text


# --- processing credits and extra credits ---------------------------------------------------------


@bp.get("/credits")
@login_required
def credits_page() -> str:
    """The customer's processing credits this period, the ledger, and the extra-credit allowance."""
    require_access(current_user.id)
    return render_template("studies/credits.html", **_credits_context())


def _credits_context(**extra: Any) -> dict[str, Any]:
    return {
        "balance": credits.credit_balance(current_user.id),
        "ledger": credits.ledger_of(current_user.id),
        **extra,
    }


@bp.post("/credits/cap")
@login_required
def set_cap() -> Response | tuple[str, int]:
    """Allow extra credits up to the monthly cap entered (in dollars), or stop them (0)."""
    try:
        credits.set_overage_cap(current_user.id, parse_dollars(request.form.get("cap", "")))
    except (credits.AllowanceRefused, credits.CreditsUnavailable) as exc:
        return render_template("studies/credits.html", **_credits_context(error=str(exc))), 422
    flash("Your extra-credit allowance is saved.", "success")
    return redirect_after_post(url_for("studies.credits_page"))


def parse_dollars(text: str) -> int:
    """``"12.50"`` -> 1250 cents. :raises AllowanceRefused: not an amount in dollars and cents."""
    cleaned = text.strip().removeprefix("$").replace(",", "")
    if not re.fullmatch(r"\d{1,7}(\.\d{1,2})?", cleaned):
        raise credits.AllowanceRefused("Enter the cap in dollars, e.g. 10 or 12.50.")
    dollars, _, cents = cleaned.partition(".")
    return int(dollars) * 100 + int(cents.ljust(2, "0") or 0)


# --- the extra-storage add-on (shown on the account dashboard) -------------------------------------


@bp.get("/storage")
@login_required
def storage() -> Response:
    """The storage meter with the add-ons: add now (prorated) or remove at period end."""
    return render("studies/storage.html", "studies/_storage_addons.html", **_storage_context())


def _storage_context(**extra: Any) -> dict[str, Any]:
    entitlements = require_access(current_user.id)
    return {
        "meter": storage_meter(current_user.id, entitlements),
        "offers": addons.offers(current_user.id),
        **extra,
    }


@bp.post("/storage/<code>/add")
@login_required
def add_storage(code: str) -> Response:
    """Add extra storage now; the rest of the period is charged at once."""
    return _change_storage(lambda: addons.add_addon(current_user.id, code), "added")


@bp.post("/storage/<code>/remove")
@login_required
def remove_storage(code: str) -> Response:
    """Remove extra storage at the end of the period (refused while the studies would not fit)."""
    return _change_storage(lambda: remove_storage_addon(current_user.id, code), "removed")


def _change_storage(change: Callable[[], SubscriptionAddOn], done: str) -> Response:
    try:
        row = change()
    except BillingError as exc:
        if wants_partial():
            context = _storage_context(error=str(exc))
            return make_response(render_template("studies/_storage_addons.html", **context), 422)
        flash(str(exc), "error")
        return redirect_after_post(url_for("studies.storage"))
    if done == "removed" and row.ends_at is not None:
        message = f"{row.addon.name} ends on {format_day(row.ends_at)}; nothing more is charged for it."
    else:
        message = f"{row.addon.name} added: your quota is larger now."
    if not wants_partial():
        flash(message, "success")
        return redirect_after_post(url_for("studies.storage"))
    response = render("studies/storage.html", "studies/_storage_addons.html", **_storage_context())
    response.headers["HX-Trigger"] = json.dumps(
        {"toast": {"message": message, "category": "success"}, "storage-changed": True}
    )
    return response
