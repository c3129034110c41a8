"""Where the demo studies live: DICOM files shipped in the package (``demo_data/``, see its README
for their origin and licences)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DATA_DIR = Path(__file__).resolve().parent / "demo_data"


@dataclass(frozen=True)
class DemoStudy:
    """One shipped study: its folder under ``demo_data`` and how the viewer titles it."""

    folder: str
    title: str
    summary: str

    @property
    def source_id(self) -> str:
        """What the caches call this data (the public demo and customers' sample share it)."""
        return f"demo-data:{self.folder}"

    def files(self) -> list[Path]:
        """The study's DICOM files (in no particular order)."""
        return sorted((DATA_DIR / self.folder).glob("*.dcm"))


CT_HEAD = DemoStudy(
    "ct-head", "CT head", "108 axial CT images of a head, 1.5 mm apart (InVesalius example, GPL-2)"
)
MR_HEAD = DemoStudy(
    "mr-head", "MR head", "181 sagittal T1 MR images of a head, 1 mm apart (MRIcron's Colin 27, BSD-3)"
)
