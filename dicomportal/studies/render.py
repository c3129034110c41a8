"""Rendering slices to PNG: window/level, the three planes with square pixels, labels, scale bar.

Everything here is a pure function of a :class:`Volume` and the view's parameters, so the same
request always gives the same bytes (the views send them with an ETag and a long cache life).
"""

from __future__ import annotations

import enum
import io
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageDraw, ImageFont

from dicomportal.studies.volume import Volume, Window, opposite

# Bump when the pixels a renderer produces change, so cached images and ETags are renewed.
RENDER_VERSION = "1"


@dataclass(frozen=True)
class Preset:
    """A named window, as OHIF's viewer offers them."""

    code: str
    name: str
    window: Window


# OHIF Viewers' default CT presets (extensions/cornerstone/.../defaultWindowLevelPresets.ts):
# the same names and width/level values.
CT_PRESETS: tuple[Preset, ...] = (
    Preset("soft-tissue", "Soft tissue", Window(center=40, width=400)),
    Preset("lung", "Lung", Window(center=-600, width=1500)),
    Preset("liver", "Liver", Window(center=90, width=150)),
    Preset("bone", "Bone", Window(center=480, width=2500)),
    Preset("brain", "Brain", Window(center=40, width=80)),
)


def presets_for(volume: Volume) -> tuple[Preset, ...]:
    """The series' own window first ("Default", from its header or data), then OHIF's CT presets
    for CT (they are Hounsfield-unit windows and mean nothing for other modalities)."""
    default = Preset("default", "Default", volume.default_window)
    return (default, *CT_PRESETS) if volume.modality == "CT" else (default,)


class Plane(enum.StrEnum):
    AXIAL = "axial"
    CORONAL = "coronal"
    SAGITTAL = "sagittal"


@dataclass(frozen=True)
class Labels:
    """Patient directions at the four edges of the displayed image."""

    top: str
    bottom: str
    left: str
    right: str


@dataclass(frozen=True)
class ViewGeometry:
    """How one plane of a series is displayed: its slice count, its image size in pixels after
    aspect correction, the size of one of those (square) pixels in mm, and its labels."""

    plane: Plane
    slices: int
    width: int
    height: int
    mm_per_pixel: float
    labels: Labels | None


class ViewError(ValueError):
    """A view the series cannot give (no coronal plane for an X-ray, a slice out of range)."""


def planes_of(volume: Volume) -> tuple[Plane, ...]:
    """The planes a series can be shown in: all three for a 3D volume, one otherwise."""
    return tuple(Plane) if volume.supports_mpr else (Plane.AXIAL,)


def _plane_spacing(volume: Volume, plane: Plane) -> tuple[float, float]:
    """mm between displayed rows and between displayed columns."""
    dz, dy, dx = volume.spacing
    return {Plane.AXIAL: (dy, dx), Plane.CORONAL: (dz, dx), Plane.SAGITTAL: (dz, dy)}[plane]


def geometry(volume: Volume, plane: Plane) -> ViewGeometry:
    """The display geometry of ``plane``.

    :raises ViewError: the series has no such plane.
    """
    if plane not in planes_of(volume):
        raise ViewError(f"This series has no {plane} view.")
    n, rows, cols = volume.shape
    shape = {Plane.AXIAL: (n, rows, cols), Plane.CORONAL: (rows, n, cols), Plane.SAGITTAL: (cols, n, rows)}
    slices, height, width = shape[plane]
    row_mm, col_mm = _plane_spacing(volume, plane)
    pixel = min(row_mm, col_mm)
    return ViewGeometry(
        plane=plane,
        slices=slices,
        width=max(1, round(width * col_mm / pixel)),
        height=max(1, round(height * row_mm / pixel)),
        mm_per_pixel=pixel,
        labels=labels(volume, plane),
    )


def labels(volume: Volume, plane: Plane) -> Labels | None:
    """Edge labels: fixed by the canonical order for 3D series, from the header for 2D images."""
    if volume.is_3d:
        return {
            Plane.AXIAL: Labels("A", "P", "R", "L"),
            Plane.CORONAL: Labels("S", "I", "R", "L"),
            Plane.SAGITTAL: Labels("S", "I", "A", "P"),
        }[plane]
    if volume.image_axes is None:
        return None
    down, right = volume.image_axes
    return Labels(top=opposite(down), bottom=down, left=opposite(right), right=right)


def plane_pixels(volume: Volume, plane: Plane, index: int) -> NDArray[np.float32] | NDArray[np.uint8]:
    """The voxels of one slice as displayed (top row first), before aspect correction.

    :raises ViewError: ``index`` is outside the plane.
    """
    view = geometry(volume, plane)
    if not 0 <= index < view.slices:
        raise ViewError(f"Slice {index + 1} does not exist: this view has {view.slices}.")
    v = volume.voxels
    if plane is Plane.AXIAL:
        return v[index]  # type: ignore[no-any-return]
    if plane is Plane.CORONAL:
        return v[::-1, index, :]  # superior at the top
    return v[::-1, :, index]


def slice_position(volume: Volume, plane: Plane, index: int) -> str:
    """Where the slice is, e.g. ``"S 20.3 mm"`` (patient coordinates), or ``"Frame 3"`` for 2D."""
    if not volume.is_3d or volume.origin is None:
        return f"Frame {index + 1}" if volume.shape[0] > 1 else ""
    axis = {Plane.AXIAL: 0, Plane.CORONAL: 1, Plane.SAGITTAL: 2}[plane]
    patient_axis = 2 - axis  # canonical axis 0 is patient z, 1 is y, 2 is x
    mm = volume.origin[patient_axis] + index * volume.spacing[axis]
    letters = {0: ("L", "R"), 1: ("P", "A"), 2: ("S", "I")}[patient_axis]
    return f"{letters[0] if mm >= 0 else letters[1]} {abs(mm):.1f} mm"


def apply_window(pixels: NDArray[np.float32], window: Window) -> NDArray[np.uint8]:
    """Grey values to 0..255: linear from ``center - width/2`` to ``center + width/2``."""
    low = window.center - window.width / 2
    scaled = (pixels - np.float32(low)) * np.float32(255.0 / window.width)
    return np.clip(scaled, 0, 255, out=scaled).astype(np.uint8)


def render_slice(volume: Volume, plane: Plane, index: int, window: Window) -> Image.Image:
    """One slice, windowed (grey) or as stored (colour), resized to square pixels.

    :raises ViewError: no such plane or slice.
    """
    view = geometry(volume, plane)
    pixels = plane_pixels(volume, plane, index)
    if volume.is_color:
        image = Image.fromarray(np.ascontiguousarray(pixels, dtype=np.uint8), mode="RGB")
    else:
        image = Image.fromarray(apply_window(pixels.astype(np.float32, copy=False), window), mode="L")
    if image.size != (view.width, view.height):
        image = image.resize((view.width, view.height), Image.Resampling.BILINEAR)
    return image


def png_bytes(image: Image.Image, compress_level: int = 1) -> bytes:
    """PNG bytes (fast compression: these images are small and served from a cache)."""
    out = io.BytesIO()
    image.save(out, format="PNG", compress_level=compress_level)
    return out.getvalue()


# --- overlays: scale bar, labels, measurements (the export burns them into the PNG) -----------

NICE_LENGTHS_MM = (1, 2, 5, 10, 20, 50, 100, 200, 500)


@dataclass(frozen=True)
class ScaleBar:
    """A scale bar about a fifth of the image wide, with a round length."""

    length_mm: float
    length_px: float

    @property
    def label(self) -> str:
        """E.g. ``"50 mm"`` (millimetres, as measurements are)."""
        return f"{self.length_mm:g} mm"


def scale_bar(view: ViewGeometry) -> ScaleBar:
    """The longest round length that fits in a fifth of the image width."""
    target = view.width * view.mm_per_pixel / 5
    length = max((n for n in NICE_LENGTHS_MM if n <= target), default=NICE_LENGTHS_MM[0])
    return ScaleBar(length_mm=float(length), length_px=length / view.mm_per_pixel)


@dataclass(frozen=True)
class Mark:
    """A measurement or note to draw: points in image pixels and the text beside them."""

    points: tuple[tuple[float, float], ...]
    text: str


OVERLAY = (255, 214, 10)  # amber: readable on black, white bone and grey tissue
NOTICE = "Not for diagnostic use"


def _font(size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    return ImageFont.load_default(size=size)


CAPTION_BAR, FOOTER_BAR = 26, 26  # pixels above and below the image in an export


def annotated(
    image: Image.Image, view: ViewGeometry, caption: str, marks: tuple[Mark, ...] = (), scale: int = 2
) -> Image.Image:
    """The image enlarged ``scale`` times with its edge labels and marks drawn on it, between a
    caption bar and a footer with the "Not for diagnostic use" notice and the scale bar: what
    "Export PNG" downloads."""
    big = image.convert("RGB").resize((image.width * scale, image.height * scale), Image.Resampling.BILINEAR)
    w, h = big.size
    canvas = Image.new("RGB", (w, h + CAPTION_BAR + FOOTER_BAR))
    canvas.paste(big, (0, CAPTION_BAR))
    draw = ImageDraw.Draw(canvas)
    font, small = _font(16), _font(13)
    top, bottom = CAPTION_BAR, CAPTION_BAR + h
    if view.labels:
        lab = view.labels
        draw.text((w / 2, top + 6), lab.top, fill=OVERLAY, font=font, anchor="mt")
        draw.text((w / 2, bottom - 6), lab.bottom, fill=OVERLAY, font=font, anchor="mb")
        draw.text((6, top + h / 2), lab.left, fill=OVERLAY, font=font, anchor="lm")
        draw.text((w - 6, top + h / 2), lab.right, fill=OVERLAY, font=font, anchor="rm")
    draw.text((8, CAPTION_BAR / 2), caption, fill=OVERLAY, font=small, anchor="lm")
    draw.text((8, bottom + FOOTER_BAR / 2), NOTICE, fill=OVERLAY, font=small, anchor="lm")
    bar = scale_bar(view)
    x1, y = w - 12, bottom + FOOTER_BAR / 2
    x0 = x1 - bar.length_px * scale
    draw.line([(x0, y), (x1, y)], fill=OVERLAY, width=2)
    draw.line([(x0, y - 5), (x0, y + 5)], fill=OVERLAY, width=2)
    draw.line([(x1, y - 5), (x1, y + 5)], fill=OVERLAY, width=2)
    draw.text((x0 - 8, y), bar.label, fill=OVERLAY, font=small, anchor="rm")
    for mark in marks:
        points = [(x * scale, top + yy * scale) for x, yy in mark.points]
        if len(points) > 1:
            draw.line(points, fill=OVERLAY, width=2)
        for px, py in points:
            draw.ellipse([px - 3, py - 3, px + 3, py + 3], outline=OVERLAY, width=2)
        tx, ty = points[-1]
        draw.text((tx + 6, ty - 6), mark.text, fill=OVERLAY, font=small, anchor="ld")
    return canvas
