"""Reading DICOM: files in, decoded :class:`Volume` objects out.

Everything about pixel values and geometry is settled here, once: compressed transfer syntaxes
are decoded by pydicom's pixel-data plugins (pylibjpeg with its libjpeg, openjpeg and RLE
codecs), the rescale slope and intercept are applied, MONOCHROME1 is inverted so that higher is
brighter everywhere downstream, slices are ordered by their position along the slice normal (not
by file name or instance number), and 3D series are turned into the canonical patient order that
``volume.py`` describes. The renderer never looks at a DICOM header.
"""

from __future__ import annotations

import io
import itertools
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO

import numpy as np
import pydicom
from numpy.typing import NDArray
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError
from pydicom.pixels.decoders.base import get_decoder
from pydicom.uid import UID

from dicomportal.studies.volume import Volume, Window

Source = bytes | BinaryIO | str | os.PathLike[str]
FloatArray = NDArray[np.float64]
PATIENT_AXES = "LPS"  # the patient direction of +x, +y, +z in DICOM's coordinate system
CANONICAL = (2, 1, 0)  # canonical axis 0, 1, 2 follow patient z, y, x (see volume.py)


class DicomReadError(ValueError):
    """The files are not a DICOM series this viewer can show; the message says why."""


class UnsupportedTransferSyntax(DicomReadError):
    """The pixel data is encoded in a transfer syntax no installed decoder handles."""

    def __init__(self, uid: str) -> None:
        self.uid = uid
        name = UID(uid).name
        described = f"{name} ({uid})" if name != uid else f"transfer syntax {uid}"
        super().__init__(
            f"This image is encoded as {described}, which this viewer cannot decode. "
            "Export the study again as uncompressed, JPEG, JPEG-LS, JPEG 2000 or RLE DICOM."
        )


# --- reading files -----------------------------------------------------------------------------


def read_dataset(source: Source) -> Dataset:
    """One DICOM file from bytes, a binary file object or a path.

    :raises DicomReadError: it is not a DICOM file.
    """
    fp: Any = io.BytesIO(source) if isinstance(source, bytes | bytearray) else source
    try:
        return pydicom.dcmread(fp)
    except (InvalidDicomError, EOFError, OSError, ValueError, KeyError) as exc:
        name = source if isinstance(source, str | os.PathLike) else "a file"
        raise DicomReadError(
            f"{os.fspath(name) if name != 'a file' else name} is not a DICOM file: {exc}"
        ) from exc


def read_series(sources: Iterable[Source]) -> list[Volume]:
    """Decode every image series among ``sources`` (files of one study, in any order).

    Files without pixel data (reports, DICOMDIR) are skipped. Series come out in series-number
    order; a series of several multi-frame files gives one volume per file.

    :raises DicomReadError: nothing to show, or a file is broken.
    :raises UnsupportedTransferSyntax: a file's pixel data cannot be decoded.
    """
    groups: dict[str, list[Dataset]] = {}
    for source in sources:
        ds = read_dataset(source)
        if "PixelData" in ds:
            groups.setdefault(str(ds.get("SeriesInstanceUID", "")), []).append(ds)
    if not groups:
        raise DicomReadError("These files hold no images.")
    volumes: list[Volume] = []
    for datasets in sorted(
        groups.values(), key=lambda g: (int(g[0].get("SeriesNumber") or 0), g[0].SeriesInstanceUID)
    ):
        multi = [ds for ds in datasets if int(ds.get("NumberOfFrames") or 1) > 1]
        volumes.extend(volume_from([ds]) for ds in multi)
        single = [ds for ds in datasets if int(ds.get("NumberOfFrames") or 1) == 1]
        if single:
            volumes.append(volume_from(single))
    return volumes


# --- decoding ----------------------------------------------------------------------------------


def transfer_syntax(ds: Dataset) -> str:
    """The dataset's transfer syntax UID ('' when the file has no meta information)."""
    meta = getattr(ds, "file_meta", None)
    return str(meta.get("TransferSyntaxUID", "")) if meta is not None else ""


# The decoders this package depends on; another installed plugin (GDCM, say) is used only for
# a syntax none of these decodes.
SHIPPED_PLUGINS = ("pylibjpeg", "pydicom")


def decoding_plugin(ds: Dataset) -> str:
    """The pixel-data plugin to decode ``ds`` with ('' lets pydicom choose).

    :raises UnsupportedTransferSyntax: no installed plugin decodes its transfer syntax.
    """
    uid = transfer_syntax(ds)
    if not uid:
        return ""
    try:
        decoder = get_decoder(uid)
    except NotImplementedError:
        raise UnsupportedTransferSyntax(uid) from None
    if not decoder.is_available:
        raise UnsupportedTransferSyntax(uid)
    return next((p for p in SHIPPED_PLUGINS if p in decoder.available_plugins), "")


def decode_frames(ds: Dataset) -> NDArray[Any]:
    """The stored pixel values as ``(frames, rows, columns[, 3])`` (colour converted to RGB).

    :raises UnsupportedTransferSyntax: no decoder for the syntax.
    :raises DicomReadError: the pixel data is corrupt.
    """
    plugin = decoding_plugin(ds)
    try:
        if plugin:
            ds.pixel_array_options(decoding_plugin=plugin)
        pixels = ds.pixel_array
    except (NotImplementedError, RuntimeError) as exc:
        raise UnsupportedTransferSyntax(transfer_syntax(ds)) from exc
    except (ValueError, AttributeError, KeyError) as exc:
        raise DicomReadError(f"The pixel data of an image could not be read: {exc}") from exc
    frames = int(ds.get("NumberOfFrames") or 1)
    samples = int(ds.get("SamplesPerPixel") or 1)
    if str(ds.get("PhotometricInterpretation", "")) == "PALETTE COLOR":
        from pydicom.pixels.processing import apply_color_lut

        pixels, samples = apply_color_lut(pixels, ds), 3
    if frames == 1:
        pixels = pixels[np.newaxis]
    if samples == 3 and pixels.dtype != np.uint8:
        top = float(pixels.max()) or 1.0
        pixels = (pixels.astype(np.float32) * (255.0 / top)).astype(np.uint8)
    return np.asarray(pixels)


def frame_attribute(ds: Dataset, frame: int, sequence: str, keyword: str) -> Any:
    """``keyword`` for one frame: per-frame functional group, shared group, then the top level
    (enhanced multi-frame CT/MR keep geometry and rescale in functional groups)."""
    per_frame = ds.get("PerFrameFunctionalGroupsSequence")
    shared = ds.get("SharedFunctionalGroupsSequence")
    for groups in (
        per_frame[frame] if per_frame and frame < len(per_frame) else None,
        shared[0] if shared else None,
    ):
        if groups is not None and sequence in groups and groups[sequence].value:
            item = groups[sequence][0]
            if keyword in item:
                return item[keyword].value
    return ds.get(keyword)


def modality_values(ds: Dataset, stored: NDArray[Any]) -> NDArray[np.float32]:
    """Rescale slope/intercept per frame (CT in Hounsfield units), then MONOCHROME1 inverted."""
    out = stored.astype(np.float32)
    for f in range(out.shape[0]):
        slope = float(frame_attribute(ds, f, "PixelValueTransformationSequence", "RescaleSlope") or 1.0)
        intercept = float(
            frame_attribute(ds, f, "PixelValueTransformationSequence", "RescaleIntercept") or 0.0
        )
        if slope != 1.0 or intercept != 0.0:
            out[f] = out[f] * slope + intercept
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        low, high = stored_range(ds)
        out = np.float32(low + high) - out
    return out


def stored_range(ds: Dataset) -> tuple[float, float]:
    """The lowest and highest modality value the stored bits can hold."""
    bits = int(ds.get("BitsStored") or ds.get("BitsAllocated") or 16)
    signed = int(ds.get("PixelRepresentation") or 0) == 1
    low, high = (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) if signed else (0, 2**bits - 1)
    slope = float(frame_attribute(ds, 0, "PixelValueTransformationSequence", "RescaleSlope") or 1.0)
    intercept = float(frame_attribute(ds, 0, "PixelValueTransformationSequence", "RescaleIntercept") or 0.0)
    ends = sorted((low * slope + intercept, high * slope + intercept))
    return ends[0], ends[1]


def header_window(ds: Dataset) -> Window | None:
    """The first window in the header (frame functional groups included), MONOCHROME1 mirrored."""
    center = frame_attribute(ds, 0, "FrameVOILUTSequence", "WindowCenter")
    width = frame_attribute(ds, 0, "FrameVOILUTSequence", "WindowWidth")
    if center is None or width is None:
        return None
    first = [
        float(v[0] if isinstance(v, Sequence) and not isinstance(v, str) else v) for v in (center, width)
    ]
    if first[1] <= 0:
        return None
    if str(ds.get("PhotometricInterpretation", "")) == "MONOCHROME1":
        low, high = stored_range(ds)
        first[0] = low + high - first[0]
    return Window(center=first[0], width=first[1])


def auto_window(voxels: NDArray[np.float32]) -> Window:
    """A window from the data (1st to 99th percentile of a sample), when the header gives none."""
    sample = voxels[:: max(1, voxels.shape[0] // 16)].ravel()[::7]
    low, high = (float(v) for v in np.percentile(sample, [1, 99]))
    return Window(center=(low + high) / 2, width=max(high - low, 1.0))


# --- geometry ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Frame:
    """One 2D image of a series with where it sits in the patient."""

    pixels: NDArray[Any]
    position: FloatArray | None
    orientation: FloatArray | None  # row direction cosines, then column direction cosines
    pixel_spacing: tuple[float, float] | None  # between rows, between columns (mm)
    dataset: Dataset


def frames_of(ds: Dataset) -> list[Frame]:
    """Decode one file into frames, each with the geometry its header (or functional groups) gives."""
    values = decode_frames(ds)
    if values.ndim == 3:
        values = modality_values(ds, values)
    count = values.shape[0]
    step = _multiframe_step(ds, count)
    frames = []
    for f in range(count):
        position = _floats(frame_attribute(ds, f, "PlanePositionSequence", "ImagePositionPatient"), 3)
        orientation = _floats(
            frame_attribute(ds, f, "PlaneOrientationSequence", "ImageOrientationPatient"), 6
        )
        if position is not None and step is not None and f > 0:
            position = position + f * step
        frames.append(Frame(values[f], position, orientation, pixel_spacing(ds, f), ds))
    return frames


def _multiframe_step(ds: Dataset, count: int) -> FloatArray | None:
    """For a multi-frame file with one position for all frames (no per-frame groups) but a slice
    spacing: the offset from one frame to the next along the normal."""
    if count < 2 or "PerFrameFunctionalGroupsSequence" in ds:
        return None
    spacing = ds.get("SpacingBetweenSlices")
    orientation = _floats(ds.get("ImageOrientationPatient"), 6)
    if spacing is None or orientation is None:
        return None
    return np.cross(orientation[:3], orientation[3:]) * float(spacing)


def pixel_spacing(ds: Dataset, frame: int = 0) -> tuple[float, float] | None:
    """Row and column spacing in mm: Pixel Spacing, else Imager Pixel Spacing (X-ray, at the
    detector), else an ultrasound region's physical delta (in cm)."""
    for value in (
        frame_attribute(ds, frame, "PixelMeasuresSequence", "PixelSpacing"),
        ds.get("ImagerPixelSpacing"),
    ):
        pair = _floats(value, 2)
        if pair is not None and pair.min() > 0:
            return float(pair[0]), float(pair[1])
    regions = ds.get("SequenceOfUltrasoundRegions")
    if regions:
        region = regions[0]
        if region.get("PhysicalUnitsXDirection") == 3 and region.get("PhysicalUnitsYDirection") == 3:
            return abs(float(region.PhysicalDeltaY)) * 10, abs(float(region.PhysicalDeltaX)) * 10
    return None


def _floats(value: Any, count: int) -> FloatArray | None:
    if value is None:
        return None
    try:
        numbers = np.array([float(v) for v in value], dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return numbers if numbers.shape == (count,) else None


def _is_stack(frames: list[Frame]) -> bool:
    """Frames that form a 3D volume: one orientation, a position each, distinct along the normal."""
    if len(frames) < 2 or any(f.position is None or f.orientation is None for f in frames):
        return False
    first = frames[0].orientation
    assert first is not None
    if any(not np.allclose(f.orientation, first, atol=1e-3) for f in frames):  # type: ignore[arg-type]
        return False
    shapes = {f.pixels.shape for f in frames}
    return len(shapes) == 1 and frames[0].pixels.ndim == 2


def volume_from(datasets: list[Dataset]) -> Volume:
    """One volume from the files of one series (or one multi-frame file).

    :raises DicomReadError: images of different sizes in a series that is not a 3D stack.
    """
    frames = [frame for ds in datasets for frame in frames_of(ds)]
    if _is_stack(frames):
        return _stack_volume(frames)
    if len({f.pixels.shape for f in frames}) != 1:
        raise DicomReadError("The images of this series have different sizes and do not form a 3D volume.")
    return _planar_volume(frames)


def _describe(ds: Dataset) -> dict[str, Any]:
    return {
        "modality": str(ds.get("Modality", "OT")),
        "series_uid": str(ds.get("SeriesInstanceUID", "")),
        "series_description": str(ds.get("SeriesDescription", "") or ds.get("Modality", "Series")),
        "study_description": str(ds.get("StudyDescription", "")),
        "frame_of_reference_uid": str(ds.get("FrameOfReferenceUID", "")),
        "transfer_syntax": transfer_syntax(ds),
    }


def _stack_volume(frames: list[Frame]) -> Volume:
    """Sort by position along the normal, drop repeated positions, reorient to (z, y, x)."""
    orientation = frames[0].orientation
    assert orientation is not None
    row_dir, col_dir = orientation[:3], orientation[3:]
    normal = np.cross(row_dir, col_dir)
    keyed = sorted(frames, key=lambda f: float(np.dot(f.position, normal)))  # type: ignore[arg-type]
    distances = np.array([float(np.dot(f.position, normal)) for f in keyed])  # type: ignore[arg-type]
    keep = np.concatenate([[True], np.diff(distances) > 1e-3])
    keyed = [f for f, k in zip(keyed, keep, strict=True) if k]
    gaps = np.diff(distances[keep])
    slice_gap = float(np.median(gaps)) if gaps.size else 1.0
    row_gap, col_gap = keyed[0].pixel_spacing or (1.0, 1.0)
    stack = np.stack([f.pixels for f in keyed]).astype(np.float32, copy=False)
    first = keyed[0].position
    assert first is not None
    voxels, spacing, origin = canonical_order(
        stack, (normal, col_dir, row_dir), (slice_gap, row_gap, col_gap), first
    )
    ds = keyed[0].dataset
    return Volume(
        voxels=np.ascontiguousarray(voxels),
        spacing=spacing,
        is_3d=True,
        default_window=header_window(ds) or auto_window(voxels),
        origin=origin,
        pixel_spacing_known=keyed[0].pixel_spacing is not None,
        value_range=(float(voxels.min()), float(voxels.max())),
        **_describe(ds),
    )


def canonical_order(
    stack: NDArray[np.float32],
    directions: tuple[FloatArray, FloatArray, FloatArray],
    spacing: tuple[float, float, float],
    first_position: FloatArray,
) -> tuple[NDArray[np.float32], tuple[float, float, float], tuple[float, float, float]]:
    """Permute and flip ``stack`` (axes pointing along ``directions``) so that its axes run
    inferior->superior, anterior->posterior, right->left. An oblique acquisition goes to the
    nearest such order (the best-aligned permutation); its planes are then approximately true.

    :returns: voxels, spacing per new axis, patient position (LPS, mm) of the new voxel [0, 0, 0].
    """
    alignment = np.array([[d[p] for p in range(3)] for d in directions])  # [array axis, patient axis]
    best = max(
        itertools.permutations(range(3)),
        key=lambda perm: sum(abs(alignment[perm[a], CANONICAL[a]]) for a in range(3)),
    )
    origin = np.array(first_position, dtype=np.float64)
    for axis in range(3):
        if alignment[axis, CANONICAL[best.index(axis)]] < 0:
            origin = origin + (stack.shape[axis] - 1) * spacing[axis] * directions[axis]
    voxels = stack.transpose(best)
    for new_axis, old_axis in enumerate(best):
        if alignment[old_axis, CANONICAL[new_axis]] < 0:
            voxels = np.flip(voxels, axis=new_axis)
    new_spacing = (spacing[best[0]], spacing[best[1]], spacing[best[2]])
    return voxels, new_spacing, (float(origin[0]), float(origin[1]), float(origin[2]))


def _planar_volume(frames: list[Frame]) -> Volume:
    """A single image, or frames in time (cine): kept in acquisition order, labelled from Patient
    Orientation (X-ray) or Image Orientation (one slice of a cross-section)."""
    ds = frames[0].dataset
    pixels = np.stack([f.pixels for f in frames])
    if pixels.ndim == 3:
        pixels = pixels.astype(np.float32, copy=False)
    row_gap, col_gap = frames[0].pixel_spacing or (1.0, 1.0)
    is_grey = pixels.ndim == 3
    window = (header_window(ds) or auto_window(pixels)) if is_grey else Window(127.5, 255.0)
    return Volume(
        voxels=np.ascontiguousarray(pixels),
        spacing=(1.0, row_gap, col_gap),
        is_3d=False,
        default_window=window,
        image_axes=image_axes(ds, frames[0].orientation),
        pixel_spacing_known=frames[0].pixel_spacing is not None,
        value_range=(float(pixels.min()), float(pixels.max())),
        **_describe(ds),
    )


def image_axes(ds: Dataset, orientation: FloatArray | None) -> tuple[str, str] | None:
    """The patient direction of increasing row index and of increasing column index."""
    patient_orientation = ds.get("PatientOrientation")
    if patient_orientation and len(patient_orientation) == 2:
        # Patient Orientation gives the direction of the rows (along a row) first, then columns.
        along_row, along_column = (str(v) for v in patient_orientation)
        return along_column, along_row
    if orientation is not None:
        return direction_letters(orientation[3:]), direction_letters(orientation[:3])
    return None


def direction_letters(cosines: FloatArray) -> str:
    """Patient direction letters of a unit vector, strongest first (``(0.9, 0.4, 0)`` -> ``"LP"``)."""
    letters = []
    for axis in np.argsort(-np.abs(cosines)):
        if abs(cosines[axis]) > 0.3:
            letter = PATIENT_AXES[axis]
            letters.append(letter if cosines[axis] > 0 else {"L": "R", "P": "A", "S": "I"}[letter])
    return "".join(letters)
