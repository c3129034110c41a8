"""What the viewer's image URLs serve: each request becomes an :class:`ImageJob` whose ETag is
known from the request alone (so a browser revalidating gets a 304 without any rendering) and
whose bytes are made once per process and then served from ``cache.images``.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
from collections.abc import Callable
from dataclasses import dataclass

from PIL import Image

from dicomportal.studies import cache, mesh, render, render3d
from dicomportal.studies.render import Mark, Plane, ViewError
from dicomportal.studies.sources import Study, series_volume
from dicomportal.studies.volume import Volume, Window

MAX_WINDOW = 1e6


@dataclass(frozen=True)
class ImageJob:
    """One deterministic image (or mesh): its cache key, ETag, type, and how to make it."""

    key: tuple[object, ...]
    mimetype: str
    make: Callable[[], bytes]
    filename: str | None = None  # set for downloads

    @functools.cached_property
    def etag(self) -> str:
        """A strong validator: the same key always gives the same bytes."""
        digest = hashlib.sha256(repr((render.RENDER_VERSION, *self.key)).encode()).hexdigest()
        return digest[:32]

    def body(self) -> bytes:
        """The bytes, made at most once per process while they stay in the cache.

        :raises ViewError: the parameters do not fit the series (slice out of range, ...).
        """
        return cache.images.get_or_make(self.key, self.make)


def parse_window(
    center: str | None, width: str | None, volume_default: Window | None = None
) -> Window | None:
    """A window from the ``c`` and ``w`` query values; None when both are absent.

    :raises ViewError: not numbers, or a width that is not positive.
    """
    if center is None and width is None:
        return volume_default
    try:
        c, w = float(center or ""), float(width or "")
    except ValueError as exc:
        raise ViewError("Window centre and width must be numbers.") from exc
    if not (math.isfinite(c) and math.isfinite(w)) or not 0 < w <= MAX_WINDOW or abs(c) > MAX_WINDOW:
        raise ViewError("The window width must be above 0 and both values within a million.")
    return Window(center=round(c, 2), width=round(w, 2))


def parse_threshold(lower: str | None, upper: str | None) -> mesh.Threshold:
    """:raises ViewError: not numbers, or lower not below upper."""
    try:
        return mesh.Threshold(round(float(lower or ""), 1), round(float(upper or ""), 1))
    except ValueError as exc:
        raise ViewError(
            str(exc) if isinstance(exc, mesh.SegmentationError) else "Thresholds must be numbers."
        ) from exc


def _volume(study: Study, series_uid: str) -> Volume:
    return series_volume(study, series_uid)


def slice_job(study: Study, series_uid: str, plane: Plane, index: int, window: Window | None) -> ImageJob:
    """One slice as PNG, windowed (``None``: the series' own window)."""

    def make() -> bytes:
        volume = _volume(study, series_uid)
        return render.png_bytes(render.render_slice(volume, plane, index, window or volume.default_window))

    return ImageJob(("slice", study.source_id, series_uid, plane.value, index, window), "image/png", make)


def segmentation_job(
    study: Study, series_uid: str, plane: Plane, index: int, window: Window | None, threshold: mesh.Threshold
) -> ImageJob:
    """The slice with the voxels inside ``threshold`` tinted red: the segmentation's preview."""

    def make() -> bytes:
        volume = _volume(study, series_uid)
        if not volume.supports_mpr:
            raise ViewError("Segmentation needs a 3D series.")
        grey = render.render_slice(volume, plane, index, window or volume.default_window).convert("RGB")
        pixels = render.plane_pixels(volume, plane, index)
        inside = (pixels >= threshold.lower) & (pixels <= threshold.upper)
        mask = Image.fromarray(inside.astype("uint8") * 150, mode="L").resize(
            grey.size, Image.Resampling.NEAREST
        )
        tinted = Image.composite(Image.new("RGB", grey.size, (230, 40, 40)), grey, mask)
        return render.png_bytes(tinted)

    key = ("segmentation", study.source_id, series_uid, plane.value, index, window, threshold)
    return ImageJob(key, "image/png", make)


def frame_3d_job(study: Study, series_uid: str, mode: render3d.Mode, angle: int) -> ImageJob:
    """One frame of the turning 3D view; angles snap to the turntable's steps."""
    angle = (round(angle / render3d.ANGLE_STEP) * render3d.ANGLE_STEP) % 360

    def make() -> bytes:
        return render.png_bytes(render3d.render_frame(_prepared(study, series_uid), mode, angle))

    return ImageJob(("3d", study.source_id, series_uid, mode.value, angle), "image/png", make)


def _prepared(study: Study, series_uid: str) -> render3d.Prepared:
    def make() -> render3d.Prepared:
        volume = _volume(study, series_uid)
        if not volume.supports_mpr:
            raise ViewError("3D views need a 3D series.")
        return render3d.prepare(volume)

    return cache.prepared.get_or_make((study.source_id, series_uid), make)


def rotation_job(study: Study, series_uid: str, mode: render3d.Mode) -> ImageJob:
    """A full turn of the 3D view as an animated PNG (APNG: browsers play it, 36 frames, 12/s)."""

    def make() -> bytes:
        frames = [
            Image.open(io.BytesIO(frame_3d_job(study, series_uid, mode, angle).body())).convert("RGB")
            for angle in render3d.angles()
        ]
        out = io.BytesIO()
        frames[0].save(out, format="PNG", save_all=True, append_images=frames[1:], duration=83, loop=0)
        return out.getvalue()

    name = f"{study.key}-{mode.value}-rotation.png"
    return ImageJob(("rotation", study.source_id, series_uid, mode.value), "image/png", make, filename=name)


def export_job(
    study: Study,
    series_uid: str,
    plane: Plane,
    index: int,
    window: Window | None,
    marks: tuple[Mark, ...],
) -> ImageJob:
    """The current view as a PNG to keep: twice the size, with labels, scale bar, caption, the
    "Not for diagnostic use" notice and this slice's measurements drawn on it."""

    def make() -> bytes:
        volume = _volume(study, series_uid)
        used = window or volume.default_window
        image = render.render_slice(volume, plane, index, used)
        view = render.geometry(volume, plane)
        caption = (
            f"{study.title} · {volume.series_description} · {plane.value} {index + 1}/{view.slices} · "
            f"{render.slice_position(volume, plane, index)} · W {used.width:g} L {used.center:g}"
        )
        return render.png_bytes(render.annotated(image, view, caption, marks), compress_level=6)

    key = ("export", study.source_id, series_uid, plane.value, index, window, marks)
    name = f"{study.key}-{plane.value}-{index + 1}.png"
    return ImageJob(key, "image/png", make, filename=name)


def stl_job(study: Study, series_uid: str, threshold: mesh.Threshold) -> ImageJob:
    """The thresholded surface (largest connected part) as binary STL."""

    def make() -> bytes:
        try:
            return mesh.surface_stl(_volume(study, series_uid), threshold)
        except mesh.SegmentationError as exc:
            raise ViewError(str(exc)) from exc

    name = f"{study.key}-{threshold.lower:g}-{threshold.upper:g}.stl"
    return ImageJob(("stl", study.source_id, series_uid, threshold), "model/stl", make, filename=name)
