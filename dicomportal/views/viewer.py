"""The DICOM viewer: the page, its images (slices, 3D frames, exports, STL) and measurements.

Every route opens its study through ``studies.sources.open_study`` (the public demo: anyone,
every tool; a customer's study: their plan's tools) and refuses a tool the plan lacks with a 403
naming the plan that includes it. Images are deterministic: ETag, a year of cache life, and a
304 without rendering when the browser already has them.
"""

from __future__ import annotations

from typing import Any

from flask import (
    Blueprint,
    Response,
    current_app,
    flash,
    render_template,
    request,
    session,
    url_for,
)
from flask_login import current_user

from dicomportal.extensions import limiter
from dicomportal.studies import cache, credits, images, render3d, shares, tools
from dicomportal.studies.annotations import (
    AnnotationError,
    DatabaseNotes,
    NoteStore,
    SessionNotes,
    draft,
    marks_on,
)
from dicomportal.studies.dicomio import DicomReadError
from dicomportal.studies.images import ImageJob
from dicomportal.studies.render import Plane, ViewError, geometry
from dicomportal.studies.sources import (
    LinkClosed,
    LoginRequired,
    NoViewerAccess,
    OpenedStudy,
    StudyNotFound,
    ToolNotInPlan,
    find_study,
    open_study,
    series_volume,
)
from dicomportal.studies.viewer import PLANE_TOOL, SeriesView, ViewerPage, viewer_page
from dicomportal.views._htmx import is_htmx, redirect_after_post, render

bp = Blueprint("viewer", __name__, url_prefix="/viewer")
YEAR = 365 * 24 * 3600
# No application-wide limits on the viewer: the check is a fair share of the time of an image
# request served from the cache. The two costly downloads (STL, animated rotation: tenths of a
# second of CPU each the first time) keep a limit of their own, per client address.
limiter.exempt(bp)
COSTLY = "30 per minute"


@bp.record_once
def configure_caches(state: Any) -> None:
    """Size the per-process caches from the ``VIEWER_CACHE_MB`` setting."""
    megabytes = int(state.app.config.get("VIEWER_CACHE_MB", 768))
    cache.configure(volume_mb=megabytes, image_mb=max(32, megabytes // 6))


def _viewer() -> Any:
    return current_user if current_user.is_authenticated else None


def _open(key: str, tool: tools.Tool | None = None) -> OpenedStudy:
    opened = open_study(key, current_user)  # the proxy: evaluated only for customers' studies
    if tool is not None:
        opened.require(tool)
    return opened


# --- errors: each domain refusal becomes its status and message --------------------------------


def _error(code: int, title: str, message: str) -> tuple[str, int]:
    template = "_error_fragment.html" if is_htmx() else "error.html"
    return render_template(template, code=code, title=title, message=message), code


@bp.errorhandler(StudyNotFound)
def study_not_found(e: Exception) -> tuple[str, int]:
    if isinstance(e, LinkClosed):
        return _error(404, "This link does not open", str(e))
    return _error(404, "Study not found", "We could not find that study.")


@bp.errorhandler(LoginRequired)
def login_required(_e: Exception) -> Any:
    return current_app.login_manager.unauthorized()  # type: ignore[attr-defined]


@bp.errorhandler(NoViewerAccess)
def no_access(e: Exception) -> tuple[str, int]:
    return _error(403, "A subscription is needed", str(e))


@bp.errorhandler(ToolNotInPlan)
def tool_not_in_plan(e: Exception) -> tuple[str, int]:
    return _error(403, "Not included in your plan", str(e))


@bp.errorhandler(credits.CreditsExhausted)
@bp.errorhandler(credits.CreditsUnavailable)
def no_credit(e: Exception) -> tuple[str, int]:
    return _error(402, "No processing credit available", str(e))


@bp.errorhandler(ViewError)
def bad_view(e: Exception) -> tuple[str, int]:
    return _error(400, "That view is not available", str(e))


@bp.errorhandler(DicomReadError)
def unreadable(e: Exception) -> tuple[str, int]:
    return _error(422, "This study cannot be shown", str(e))


# --- pages -------------------------------------------------------------------------------------


def script_config(view: SeriesView, page: ViewerPage) -> dict[str, Any]:
    """What ``static/js/viewer.js`` needs about one viewport (a data attribute, as JSON)."""
    base = url_for("viewer.page", key=view.study.key) + "/" + view.series.uid
    return {
        "base": base,
        "study": view.study.key,
        "title": view.study.title,
        "description": view.volume.series_description,
        "plane": view.plane.value,
        "index": view.index,
        "window": {"c": view.window.center, "w": view.window.width},
        "color": view.volume.is_color,
        "frame": view.volume.frame_of_reference_uid,
        "spacingKnown": view.volume.pixel_spacing_known,
        "planes": {
            plane.value: {
                "slices": pv.geometry.slices,
                "width": pv.geometry.width,
                "height": pv.geometry.height,
                "mm": pv.geometry.mm_per_pixel,
                "labels": [
                    pv.geometry.labels.top,
                    pv.geometry.labels.bottom,
                    pv.geometry.labels.left,
                    pv.geometry.labels.right,
                ]
                if pv.geometry.labels
                else None,
                "start": pv.position_start,
                "step": pv.position_step,
                "letters": list(pv.position_letters),
            }
            for plane, pv in view.planes.items()
        },
        "tools": {code: state.allowed for code, state in page.tools.items()},
        "modes": [m.value for m in page.modes_3d],
        "angleStep": render3d.ANGLE_STEP,
        "frameSize": render3d.FRAME_SIZE,
    }


@bp.app_template_filter("num")
def number(value: float) -> str:
    """A window or threshold value as the viewer's script writes it in URLs (``40.0`` -> ``40``)."""
    return f"{round(float(value), 2):g}"


@bp.app_template_filter("viewer_config")
def viewer_config_filter(view: SeriesView, page: ViewerPage) -> dict[str, Any]:
    """``{{ view | viewer_config(page) | tojson }}`` in the viewer templates."""
    return script_config(view, page)


@bp.get("/<key>")
def page(key: str) -> str:
    """The viewer on one study: ``?series=&plane=&i=&preset=`` (or ``&c=&w=``) choose the slice,
    ``?plane=3d&mode=&angle=`` the 3D view."""
    opened = _open(key)
    args = request.args
    model = viewer_page(
        opened,
        args.get("series"),
        args.get("plane"),
        args.get("i"),
        args.get("c"),
        args.get("w"),
        args.get("preset"),
        mode=args.get("mode"),
        angle=args.get("angle"),
    )
    if opened.share_id is not None:
        shares.count_opening(opened.share_id)
    built_3d = (
        credits.has_spent(opened.stored_id, model.main.series.uid, credits.BUILD_3D)
        if opened.stored_id is not None
        else True
    )
    return render_template(
        "viewer/page.html", page=model, credit_offer=_credit_offer(opened, model), built_3d=built_3d
    )


def _credit_offer(opened: OpenedStudy, model: ViewerPage) -> credits.CreditOffer | None:
    """For the owner on their stored study: the 3D view's state and their credits."""
    if opened.stored_id is None or opened.share_id is not None:
        return None
    return credits.offer_for(current_user.id, opened.stored_id, model.main.series.uid)


def _require_built_3d(opened: OpenedStudy, series: str) -> None:
    """A stored study's 3D view is shown once its owner has spent a credit building it."""
    if opened.stored_id is not None and not credits.has_spent(opened.stored_id, series, credits.BUILD_3D):
        raise ViewError(
            "The 3D view of this series has not been built yet: its owner builds it with one credit."
        )


def _owner_spend(opened: OpenedStudy, action: str, series: str) -> None:
    """Spend one of the owner's credits (never through a share link). :raises CreditsExhausted:"""
    if opened.stored_id is None or opened.share_id is not None:
        raise StudyNotFound("Credits are spent on your own stored studies.")
    opened.study.series_info(series)
    credits.spend_credit(current_user.id, action, opened.stored_id, series)


@bp.post("/<key>/<series>/build-3d")
def build_3d(key: str, series: str) -> Response:
    """Spend one processing credit on the 3D view of a stored series, then show it."""
    opened = _open(key, tools.VOLUME_3D)
    if not credits.has_spent(opened.stored_id or 0, series, credits.BUILD_3D):
        _owner_spend(opened, credits.BUILD_3D, series)
        flash("The 3D view is built: 1 processing credit used.", "success")
    return redirect_after_post(url_for("viewer.page", key=key, series=series, plane="3d"))


@bp.get("/<key>/compare")
def compare(key: str) -> str:
    """Two studies side by side with linked scrolling: ``?with=<study key>``."""
    opened = _open(key, tools.COMPARE)
    other = find_study(opened, request.args.get("with", ""))
    args = request.args
    model = viewer_page(opened, args.get("series"), args.get("plane"), args.get("i"), compare_with=other)
    return render_template("viewer/page.html", page=model)


# --- images ------------------------------------------------------------------------------------


def _send(job: ImageJob, opened: OpenedStudy) -> Response:
    """The job's bytes with its ETag and a year of cache life, or a 304 when the browser has it."""
    if request.if_none_match.contains(job.etag):
        response = Response(status=304)
    else:
        response = Response(job.body(), mimetype=job.mimetype)
    response.set_etag(job.etag)
    response.cache_control.max_age = YEAR
    response.cache_control.immutable = True
    if opened.demo:
        response.cache_control.public = True
    else:
        response.cache_control.private = True
    if job.filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{job.filename}"'
    return response


def _plane(name: str) -> Plane:
    try:
        return Plane(name)
    except ValueError as exc:
        raise ViewError(f"No {name!r} view.") from exc


@bp.get("/<key>/<series>/<plane>/<int:index>.png")
def slice_png(key: str, series: str, plane: str, index: int) -> Response:
    """One slice (axial: 2D slices; coronal and sagittal: MPR), windowed by ``?c=&w=``."""
    chosen = _plane(plane)
    opened = _open(key, PLANE_TOOL[chosen])
    window = images.parse_window(request.args.get("c"), request.args.get("w"))
    return _send(images.slice_job(opened.study, series, chosen, index, window), opened)


@bp.get("/<key>/<series>/3d/<mode>/<int:angle>.png")
def frame_3d(key: str, series: str, mode: str, angle: int) -> Response:
    """One frame of the turning 3D view (``mip``, ``bone`` or ``skin``)."""
    opened = _open(key, tools.VOLUME_3D)
    _require_built_3d(opened, series)
    return _send(images.frame_3d_job(opened.study, series, _mode(mode), angle), opened)


def _mode(name: str) -> render3d.Mode:
    try:
        return render3d.Mode(name)
    except ValueError as exc:
        raise ViewError(f"No 3D mode {name!r}.") from exc


@bp.get("/<key>/<series>/rotation/<mode>.png")
@limiter.limit(COSTLY)
def rotation(key: str, series: str, mode: str) -> Response:
    """A full turn of the 3D view as an animated PNG, to download."""
    opened = _open(key, tools.EXPORT)
    _require_built_3d(opened, series)
    return _send(images.rotation_job(opened.study, series, _mode(mode)), opened)


@bp.get("/<key>/<series>/export/<plane>/<int:index>.png")
def export_png(key: str, series: str, plane: str, index: int) -> Response:
    """The current view with labels, scale bar and this slice's measurements, to download."""
    chosen = _plane(plane)
    opened = _open(key, tools.EXPORT)
    opened.require(PLANE_TOOL[chosen])
    window = images.parse_window(request.args.get("c"), request.args.get("w"))
    notes = _notes().list(key, series) if opened.allows(tools.MEASURE) else []
    job = images.export_job(opened.study, series, chosen, index, window, marks_on(notes, chosen, index))
    return _send(job, opened)


@bp.get("/<key>/<series>/segmentation/<plane>/<int:index>.png")
def segmentation_png(key: str, series: str, plane: str, index: int) -> Response:
    """The slice with the voxels between ``?lo=&hi=`` tinted: the segmentation's preview."""
    chosen = _plane(plane)
    opened = _open(key, tools.SEGMENT)
    window = images.parse_window(request.args.get("c"), request.args.get("w"))
    threshold = images.parse_threshold(request.args.get("lo"), request.args.get("hi"))
    return _send(images.segmentation_job(opened.study, series, chosen, index, window, threshold), opened)


@bp.route("/<key>/<series>/surface.stl", methods=["GET", "POST"])
@limiter.limit(COSTLY)
def surface_stl(key: str, series: str) -> Response:
    """The thresholded surface (``lo``, ``hi``) as an STL file for 3D printing. On a stored study
    each export is a POST that spends one processing credit (the button says so first)."""
    opened = _open(key, tools.SEGMENT)
    values = request.form if request.method == "POST" else request.args
    threshold = images.parse_threshold(values.get("lo"), values.get("hi"))
    if opened.stored_id is not None:
        if request.method != "POST":
            raise ViewError("Each STL export of a stored study uses one credit: use the Export STL button.")
        _owner_spend(opened, credits.EXPORT_STL, series)
    return _send(images.stl_job(opened.study, series, threshold), opened)


# --- measurements and notes --------------------------------------------------------------------


def _notes() -> NoteStore:
    user = _viewer()
    return DatabaseNotes(user.id) if user is not None else SessionNotes(session)


@bp.get("/<key>/<series>/notes")
def notes(key: str, series: str) -> Response:
    """This user's measurements and notes on the series."""
    opened = _open(key, tools.MEASURE)
    opened.study.series_info(series)
    return render(
        "viewer/notes.html",
        "viewer/_notes.html",
        page_key=key,
        series=series,
        notes=_notes().list(key, series),
    )


@bp.post("/<key>/<series>/notes")
def add_note(key: str, series: str) -> tuple[Response, int] | Response:
    """Save a distance, angle or note drawn on a slice; the list comes back (422 with the reason)."""
    opened = _open(key, tools.MEASURE)
    form = request.form
    plane = _plane(form.get("plane", ""))
    opened.require(PLANE_TOOL[plane])
    volume = series_volume(opened.study, series)
    store = _notes()
    error = None
    try:
        new = draft(
            form.get("kind", ""),
            geometry(volume, plane),
            int(form.get("slice", "-1") or -1),
            form.get("points", ""),
            form.get("text", ""),
            volume.pixel_spacing_known,
        )
        store.add(key, series, new)
    except (AnnotationError, ValueError) as exc:
        error = str(exc) if isinstance(exc, AnnotationError) else "The slice must be a number."
    response = render(
        "viewer/notes.html",
        "viewer/_notes.html",
        page_key=key,
        series=series,
        notes=store.list(key, series),
        error=error,
    )
    return (response, 422) if error else response


@bp.post("/<key>/<series>/notes/<int:note_id>/delete")
def delete_note(key: str, series: str, note_id: int) -> Response:
    """Delete one of this user's notes (someone else's id: nothing happens, 404)."""
    _open(key, tools.MEASURE)
    store = _notes()
    if not store.delete(key, series, note_id):
        raise StudyNotFound("No such note.")
    return render(
        "viewer/notes.html", "viewer/_notes.html", page_key=key, series=series, notes=store.list(key, series)
    )
