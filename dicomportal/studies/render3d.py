"""3D views of a volume turning about the patient's head-foot axis: maximum-intensity projection
and composited volume rendering (front-to-back alpha blending with gradient shading).

A volume is prepared once (:func:`prepare`: a smaller copy quantised to 256 levels and its
surface normals); each frame is then one gather of the rotated sample grid and a few array
operations. The caches in ``cache.py`` keep the prepared volume and every frame made.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import cast

import numpy as np
from numpy.typing import NDArray
from PIL import Image
from scipy import ndimage

from dicomportal.studies.volume import Volume

FRAME_SIZE = 256  # frames are square, FRAME_SIZE pixels
GRID = 192  # samples along a ray and across the image, before the frame is scaled up
ANGLE_STEP = 10  # the turntable turns in steps of this many degrees (36 frames a turn)


class Mode(enum.StrEnum):
    MIP = "mip"
    BONE = "bone"
    SKIN = "skin"


MODE_NAMES = {
    Mode.MIP: "Maximum intensity projection",
    Mode.BONE: "Volume rendering: bone",
    Mode.SKIN: "Volume rendering: skin",
}


@dataclass(frozen=True)
class TransferFunction:
    """Opacity ramps from ``low`` to ``high`` (modality values) up to ``opacity``; one colour."""

    low: float
    high: float
    opacity: float
    color: tuple[float, float, float]


# Hounsfield units for CT; for other modalities the same ramps are taken as fractions of the
# series' value range (skin: the first tenth above background; bone: the brightest structures).
CT_TRANSFER = {
    Mode.BONE: TransferFunction(150.0, 450.0, 0.85, (0.93, 0.88, 0.78)),
    Mode.SKIN: TransferFunction(-600.0, -300.0, 0.9, (0.93, 0.72, 0.62)),
}
RELATIVE_TRANSFER = {
    Mode.BONE: TransferFunction(0.55, 0.8, 0.6, (0.93, 0.88, 0.78)),
    Mode.SKIN: TransferFunction(0.08, 0.2, 0.9, (0.93, 0.72, 0.62)),
}


@dataclass(frozen=True, eq=False)
class Prepared:
    """What every frame of one volume reuses."""

    levels: NDArray[np.uint8]  # (z, y, x) quantised values; outside the body and the border are 0
    peaks: NDArray[np.uint8]  # the same, from the local maxima (a MIP of thin bone then has no moire)
    normals: NDArray[np.int8]  # (2, z, y, x): y and x components of the unit gradient * 127
    value_low: float  # the modality value of level 0
    value_step: float  # modality value per level
    z_scale: float  # displayed height of one z sample, in in-plane sample widths
    modality: str
    value_range: tuple[float, float]

    @property
    def nbytes(self) -> int:
        """Memory taken (what the cache counts)."""
        return int(self.levels.nbytes + self.peaks.nbytes + self.normals.nbytes)


def body_mask(voxels: NDArray[np.float32], threshold: float) -> NDArray[np.bool_]:
    """The largest connected part above ``threshold``, slightly grown: the patient without the
    table or head holder, which would otherwise stand in front of the anatomy in 3D."""
    labelled, count = ndimage.label(voxels > threshold)
    if count == 0:
        return np.ones(voxels.shape, dtype=bool)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    mask: NDArray[np.bool_] = ndimage.binary_dilation(labelled == int(sizes.argmax()), iterations=2)
    return mask


def prepare(volume: Volume) -> Prepared:
    """Crop to the patient, resample so the crop's diagonal is ``GRID`` square samples, quantise
    to 256 levels, take the surface normals. Done once per volume (about 0.2 s for a head CT).

    :raises ValueError: the volume is not a 3D grey-level series.
    """
    if not volume.supports_mpr:
        raise ValueError("3D views need a 3D series.")
    low, high = volume.value_range
    if volume.modality == "CT":
        low, high = max(low, -1024.0), min(high, 3071.0)
    step_value = max((high - low) / 255.0, 1e-6)
    dz, dy, dx = volume.spacing
    # Coarse first (every other voxel) for the mask: it only has to find the patient.
    voxels = cast(NDArray[np.float32], volume.voxels)  # grey levels: supports_mpr says so
    coarse = voxels[::2, ::2, ::2]
    mask = body_mask(coarse, -500.0 if volume.modality == "CT" else low + 0.08 * (high - low))
    full_mask = np.repeat(np.repeat(np.repeat(mask, 2, 0), 2, 1), 2, 2)[
        : volume.shape[0], : volume.shape[1], : volume.shape[2]
    ]
    _, ys, xs = (np.flatnonzero(full_mask.any(axis=axes)) for axes in ((1, 2), (0, 2), (0, 1)))
    y0, y1, x0, x1 = ys[0], ys[-1] + 1, xs[0], xs[-1] + 1
    cropped = np.where(full_mask[:, y0:y1, x0:x1], voxels[:, y0:y1, x0:x1], np.float32(low))
    # The rays must reach the whole patient at every angle: the circle around the crop's centre
    # through the patient's farthest point.
    footprint_y, footprint_x = np.nonzero(full_mask[:, y0:y1, x0:x1].any(axis=0))
    reach_mm = np.hypot((footprint_y - (y1 - y0 - 1) / 2) * dy, (footprint_x - (x1 - x0 - 1) / 2) * dx).max()
    sample = max(2 * float(reach_mm) / GRID, min(dy, dx))  # mm per sample
    zoom = (min(1.0, dz / sample), dy / sample, dx / sample)
    levels = _quantise(ndimage.zoom(cropped, zoom, order=1, prefilter=False), low, step_value)
    reach = tuple(max(1, round(sample / d)) for d in (dz, dy, dx))
    peaks = _quantise(
        ndimage.zoom(ndimage.maximum_filter(cropped, size=reach), zoom, order=1, prefilter=False),
        low,
        step_value,
    )
    smooth = ndimage.gaussian_filter(levels.astype(np.float32), 1.0)
    _, gy, gx = np.gradient(smooth)
    gz = np.gradient(smooth, axis=0)
    norm = np.sqrt(gz * gz + gy * gy + gx * gx) + 1e-6
    normals = (np.stack([gy / norm, gx / norm]) * 127).astype(np.int8)
    return Prepared(
        levels=levels,
        peaks=peaks,
        normals=normals,
        value_low=low,
        value_step=step_value,
        z_scale=dz / zoom[0] / sample,
        modality=volume.modality,
        value_range=(low, high),
    )


def _quantise(values: NDArray[np.float32], low: float, step: float) -> NDArray[np.uint8]:
    """Levels 1..255 for the data, with a border of 0 (empty) around it for rays that leave."""
    levels = np.clip((values - low) / step, 0, 255).astype(np.uint8)
    return np.pad(levels, ((0, 0), (1, 1), (1, 1)))


def modes_for(volume: Volume) -> tuple[Mode, ...]:
    """MIP always; bone only for CT (bone has no signal of its own in MR), skin for both."""
    return (Mode.MIP, Mode.BONE, Mode.SKIN) if volume.modality == "CT" else (Mode.MIP, Mode.SKIN)


def _transfer(prepared: Prepared, mode: Mode) -> tuple[NDArray[np.float32], tuple[float, float, float]]:
    """Opacity per level (0..255) for ``mode``, and its colour."""
    if prepared.modality == "CT":
        tf = CT_TRANSFER[mode]
        low, high = tf.low, tf.high
    else:
        tf = RELATIVE_TRANSFER[mode]
        span = prepared.value_range[1] - prepared.value_range[0]
        low, high = prepared.value_range[0] + tf.low * span, prepared.value_range[0] + tf.high * span
    values = prepared.value_low + np.arange(256, dtype=np.float32) * prepared.value_step
    ramp = np.clip((values - low) / max(high - low, 1e-6), 0, 1) * tf.opacity
    ramp[0] = 0.0  # the border and anything at the bottom of the range is empty space
    return ramp.astype(np.float32), tf.color


def _sample_grid(prepared: Prepared, angle: float) -> NDArray[np.intp]:
    """Flat (y * nx + x) indices of a GRID x GRID plane of rays turned ``angle`` degrees about the
    z axis, ``[u, t]``: u across the image, t along the ray (last, so rays are contiguous).

    At 0 degrees the viewer is in front of the patient (rays run anterior to posterior) and the
    patient's right is on the viewer's left; positive angles turn the patient to the viewer's left.
    """
    _, ny, nx = prepared.levels.shape
    theta = math.radians(angle)
    offsets = np.arange(GRID, dtype=np.float64) - (GRID - 1) / 2
    u, t = np.meshgrid(offsets, offsets, indexing="ij")
    y = (ny - 1) / 2 + t * math.cos(theta) - u * math.sin(theta)
    x = (nx - 1) / 2 + t * math.sin(theta) + u * math.cos(theta)
    inside = (y >= 0) & (y <= ny - 1) & (x >= 0) & (x <= nx - 1)
    flat = np.rint(y).astype(np.intp) * nx + np.rint(x).astype(np.intp)
    return np.where(inside, flat, 0)  # index 0 is in the zero border: empty space


def render_frame(prepared: Prepared, mode: Mode, angle: int) -> Image.Image:
    """One FRAME_SIZE x FRAME_SIZE frame of ``mode`` seen from ``angle`` degrees."""
    flat = _sample_grid(prepared, float(angle))
    z = prepared.levels.shape[0]
    if mode is Mode.MIP:
        samples = np.take(prepared.peaks.reshape(z, -1), flat, axis=1)  # (z, u, t)
        projection = samples.max(axis=2)
        top = float(np.percentile(projection, 99.7)) or 1.0
        grey = np.clip(projection.astype(np.float32) * (255.0 / top), 0, 255).astype(np.uint8)
        image = Image.fromarray(np.ascontiguousarray(grey[::-1]), mode="L").convert("RGB")
    else:
        image = _composite(prepared, mode, flat, float(angle))
    return _fit(image, prepared.z_scale)


DEPTH = 12  # samples composited behind the first visible one (the rest is hidden behind them)


def _composite(prepared: Prepared, mode: Mode, flat: NDArray[np.intp], angle: float) -> Image.Image:
    """Front-to-back compositing along each ray: each sample adds its shaded colour times its
    opacity times the transparency of the samples in front of it. Rays start at their first
    visible sample and stop DEPTH samples later (early ray termination: the presets are nearly
    opaque, so what lies further behind would add almost nothing)."""
    opacity, color = _transfer(prepared, mode)
    z = prepared.levels.shape[0]
    levels = prepared.levels.reshape(z, -1)
    samples = np.take(levels, flat, axis=1)  # (z, u, t)
    threshold = np.uint8(int(np.argmax(opacity > 0.02)))  # the ramps rise with the value
    visible = samples >= threshold
    first = visible.argmax(axis=2)  # (z, u); 0 where nothing is visible
    steps = np.minimum(first[..., None] + np.arange(DEPTH), GRID - 1)  # (z, u, k)
    rays = flat[np.arange(GRID)[None, :, None], steps]  # flat (y, x) of each sample kept
    rows = np.arange(z)[:, None, None]
    kept = levels[rows, rays]
    alpha = opacity[kept]
    front = np.cumprod(1.0 - alpha, axis=2)
    weight = alpha
    weight[..., 1:] *= front[..., :-1]
    theta = math.radians(angle)
    ny = prepared.normals[0].reshape(z, -1)[rows, rays].astype(np.float32)
    nx = prepared.normals[1].reshape(z, -1)[rows, rays].astype(np.float32)
    facing = np.abs(ny * math.cos(theta) + nx * math.sin(theta)) * (1.0 / 127.0)  # headlight
    shade = (weight * (0.2 + 0.8 * facing)).sum(axis=2)  # (z, u)
    rgb = np.clip(shade[..., None] * np.array(color, dtype=np.float32) * 255.0, 0, 255).astype(np.uint8)
    return Image.fromarray(np.ascontiguousarray(rgb[::-1]), mode="RGB")


def _fit(image: Image.Image, z_scale: float) -> Image.Image:
    """Stretch rows to the true slice spacing, then centre in a black FRAME_SIZE square."""
    height = max(1, round(image.height * z_scale))
    scale = FRAME_SIZE / max(image.width, height)
    size = (max(1, round(image.width * scale)), max(1, round(height * scale)))
    scaled = image.resize(size, Image.Resampling.BILINEAR)
    frame = Image.new("RGB", (FRAME_SIZE, FRAME_SIZE))
    frame.paste(scaled, ((FRAME_SIZE - size[0]) // 2, (FRAME_SIZE - size[1]) // 2))
    return frame


def angles() -> range:
    """Every angle the turntable stops at."""
    return range(0, 360, ANGLE_STEP)


def rotation_frames(prepared: Prepared, mode: Mode) -> list[Image.Image]:
    """A full turn, for the animated export."""
    return [render_frame(prepared, mode, a) for a in angles()]
