"""A decoded DICOM series: voxels in patient-aligned order, with the geometry and labels to show it.

Every 3D series is stored in one canonical order whatever plane it was acquired in: axis 0 runs
from the patient's feet to head (inferior to superior), axis 1 from front to back (anterior to
posterior), axis 2 from the patient's right to left. That is DICOM's LPS patient system, indexed
(z, y, x). Axial slices are then ``voxels[k]`` in radiological convention (anterior at the top,
the patient's right on the viewer's left) with no further flipping anywhere else.

2D images (X-ray, ultrasound, a cine loop) keep their acquisition order: axis 0 is the frame.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray

OPPOSITE = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S", "H": "F", "F": "H"}


def opposite(direction: str) -> str:
    """The label at the other edge: ``"LP"`` -> ``"RA"`` (DICOM's Patient Orientation letters)."""
    return "".join(OPPOSITE.get(letter, letter) for letter in direction)


@dataclass(frozen=True)
class Window:
    """A VOI window: grey values from ``center - width/2`` (black) to ``center + width/2`` (white)."""

    center: float
    width: float

    def __post_init__(self) -> None:
        if not self.width > 0:
            raise ValueError("A window's width must be positive.")


@dataclass(frozen=True, eq=False)
class Volume:
    """One series, decoded once: modality values (rescale applied, MONOCHROME1 already inverted).

    ``voxels`` is float32 ``(slices, rows, columns)``, or uint8 ``(frames, rows, columns, 3)``
    for colour images. ``spacing`` is the distance in mm between neighbouring voxels along each
    axis (``pixel_spacing_known`` False: the header gave none and 1.0 stands for one pixel).
    """

    voxels: NDArray[np.float32] | NDArray[np.uint8]
    spacing: tuple[float, float, float]
    is_3d: bool  # canonical (z, y, x) patient order, see the module docstring
    modality: str
    series_uid: str
    series_description: str
    study_description: str
    frame_of_reference_uid: str
    default_window: Window
    origin: tuple[float, float, float] | None = None  # patient LPS (mm) of voxel [0, 0, 0] (3D only)
    image_axes: tuple[str, str] | None = None  # 2D only: direction of increasing row, column index
    pixel_spacing_known: bool = True
    transfer_syntax: str = ""
    value_range: tuple[float, float] = field(default=(0.0, 0.0))

    @property
    def shape(self) -> tuple[int, int, int]:
        """Slices (or frames), rows, columns."""
        n, rows, cols = self.voxels.shape[:3]
        return int(n), int(rows), int(cols)

    @property
    def is_color(self) -> bool:
        """Colour (RGB) frames, as ultrasound often has: no window/level, no 3D."""
        return self.voxels.ndim == 4

    @property
    def supports_mpr(self) -> bool:
        """Coronal, sagittal and 3D views need a 3D grey-level series of a few slices at least."""
        return self.is_3d and not self.is_color and self.shape[0] >= 3

    @property
    def nbytes(self) -> int:
        """Memory the voxels take (what the per-process cache counts)."""
        return int(self.voxels.nbytes)
