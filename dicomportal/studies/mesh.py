"""Threshold segmentation and its surface as an STL file for 3D printing.

The mask is every voxel whose value lies in ``[lower, upper]`` (Hounsfield units for CT), keeping
by default only its largest connected part (a skull without the head holder or stray noise). The
surface is scikit-image's marching cubes over the mask padded with empty voxels, so it is closed
(watertight) even where the anatomy touches the edge of the scan; trimesh writes it as binary STL
in millimetres, in the patient's coordinate directions.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass

import numpy as np
import trimesh
from numpy.typing import NDArray
from scipy import ndimage
from skimage import measure

from dicomportal.studies.volume import Volume

MAX_VOXELS = 1_500_000  # meshes are made from at most this many voxels (coarser for big scans)


class SegmentationError(ValueError):
    """A threshold that selects nothing, or a series that is not 3D."""


@dataclass(frozen=True)
class Threshold:
    """The value range a segmentation keeps, inclusive."""

    lower: float
    upper: float

    def __post_init__(self) -> None:
        if not self.lower < self.upper:
            raise SegmentationError("The lower threshold must be below the upper one.")


# Bone as InVesalius proposes it for CT (its "Bone" threshold preset).
BONE = Threshold(226, 3071)


def default_threshold(volume: Volume) -> Threshold:
    """Bone for CT; for other modalities the brightest third of the value range."""
    if volume.modality == "CT":
        return BONE
    low, high = volume.value_range
    return Threshold(round(low + (high - low) * 2 / 3, 1), high)


def mask_of(
    voxels: NDArray[np.float32], threshold: Threshold, largest_only: bool = True
) -> NDArray[np.bool_]:
    """Voxels inside the threshold; with ``largest_only``, only the largest connected part."""
    mask = (voxels >= threshold.lower) & (voxels <= threshold.upper)
    if not largest_only or not mask.any():
        return mask
    labelled, _count = ndimage.label(mask)
    sizes = np.bincount(labelled.ravel())
    sizes[0] = 0
    keep: NDArray[np.bool_] = labelled == int(sizes.argmax())
    return keep


def surface_stl(volume: Volume, threshold: Threshold, largest_only: bool = True) -> bytes:
    """The segmented surface as binary STL (millimetres).

    :raises SegmentationError: the series is not 3D or the threshold keeps nothing.
    """
    if not volume.supports_mpr:
        raise SegmentationError("Segmentation needs a 3D series.")
    factor = max(1, math.ceil((math.prod(volume.shape) / MAX_VOXELS) ** (1 / 3)))
    voxels = volume.voxels[::factor, ::factor, ::factor] if factor > 1 else volume.voxels
    mask = mask_of(voxels, threshold, largest_only)  # type: ignore[arg-type]
    if mask.sum() < 8:
        raise SegmentationError("This threshold selects nothing in the series: try a wider range.")
    field = ndimage.gaussian_filter(np.pad(mask, 2).astype(np.float32), 0.7)
    spacing = tuple(s * factor for s in volume.spacing)
    vertices, faces, _normals, _values = measure.marching_cubes(  # type: ignore[no-untyped-call]
        field, level=0.5, spacing=spacing
    )
    # Array axes are (z, y, x); STL gets (x, y, z) in mm, so slicers show the patient upright.
    # (Swapping the axes mirrors the mesh, which turns skimage's inward-wound faces outward.)
    xyz = vertices[:, ::-1] - 2 * np.array(spacing[::-1])  # undo the padding
    if volume.origin is not None:
        xyz = xyz + np.array(volume.origin)  # patient coordinates, as the DICOM headers give them
    mesh = trimesh.Trimesh(vertices=xyz, faces=faces, process=True)
    out = io.BytesIO()
    mesh.export(out, file_type="stl")
    return out.getvalue()
