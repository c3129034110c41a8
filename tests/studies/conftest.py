"""Fixtures for the DICOM tests: the shipped demo series and series made from it in other
transfer syntaxes (GDCM transcodes; the viewer decodes with its own plugins), in tmp dirs."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid

from dicomportal.studies import cache
from dicomportal.studies.demo import CT_HEAD

SLICES = 12  # enough of the demo CT for a volume; small enough to transcode quickly


@pytest.fixture(scope="session")
def ct_subset(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """The middle SLICES images of the demo CT, decompressed (Explicit VR Little Endian)."""
    out = tmp_path_factory.mktemp("ct-uncompressed")
    datasets = sorted(
        (pydicom.dcmread(p) for p in CT_HEAD.files()), key=lambda ds: float(ds.ImagePositionPatient[2])
    )
    middle = len(datasets) // 2
    paths = []
    for ds in datasets[middle - SLICES // 2 : middle + SLICES // 2]:
        ds.decompress()
        path = out / f"{ds.InstanceNumber:03d}.dcm"
        ds.save_as(path, enforce_file_format=True)
        paths.append(path)
    return paths


def gdcm_transcode(source: Path, target: Path, syntax: str) -> None:
    """Re-encode one file with GDCM (an encoder independent of the viewer's decoders)."""
    import gdcm

    reader = gdcm.ImageReader()
    reader.SetFileName(str(source))
    assert reader.Read(), source
    change = gdcm.ImageChangeTransferSyntax()
    change.SetTransferSyntax(gdcm.TransferSyntax(getattr(gdcm.TransferSyntax, syntax)))
    change.SetInput(reader.GetImage())
    assert change.Change(), syntax
    writer = gdcm.ImageWriter()
    writer.SetFile(reader.GetFile())
    writer.SetImage(change.GetOutput())
    writer.SetFileName(str(target))
    assert writer.Write(), target


@pytest.fixture(scope="session")
def transcoded(
    tmp_path_factory: pytest.TempPathFactory, ct_subset: list[Path]
) -> Callable[[str], list[Path]]:
    """``transcoded("JPEGLSLossless")``: the subset re-encoded in that GDCM transfer syntax."""
    made: dict[str, list[Path]] = {}

    def make(syntax: str) -> list[Path]:
        if syntax not in made:
            out = tmp_path_factory.mktemp(syntax)
            made[syntax] = []
            for path in ct_subset:
                gdcm_transcode(path, out / path.name, syntax)
                made[syntax].append(out / path.name)
        return made[syntax]

    return make


@pytest.fixture(autouse=True)
def _empty_caches() -> None:
    """Each test decodes for itself (and may count decodes)."""
    cache.volumes.clear()
    cache.prepared.clear()
    cache.images.clear()


def new_dataset(modality: str, sop_class: str, **elements: object) -> Dataset:
    """A minimal image dataset with file meta (Explicit VR Little Endian) and ``elements``."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = ds.file_meta.MediaStorageSOPInstanceUID
    ds.Modality = modality
    ds.StudyInstanceUID = generate_uid()
    ds.SeriesInstanceUID = generate_uid()
    ds.PatientName = "Test^Synthetic"
    for keyword, value in elements.items():
        setattr(ds, keyword, value)
    return ds


def set_pixels(ds: Dataset, pixels: np.ndarray, photometric: str = "MONOCHROME2") -> None:
    """Unsigned 16-bit grey (or 8-bit RGB) pixel data for ``pixels`` (frames, rows, cols[, 3])."""
    color = pixels.ndim == 4 or (pixels.ndim == 3 and pixels.shape[-1] == 3 and photometric == "RGB")
    ds.SamplesPerPixel = 3 if color else 1
    ds.PhotometricInterpretation = photometric
    if color:
        ds.PlanarConfiguration = 0
    ds.Rows, ds.Columns = pixels.shape[-3:-1] if color else pixels.shape[-2:]
    bits = 8 if pixels.dtype == np.uint8 else 16
    ds.BitsAllocated = ds.BitsStored = bits
    ds.HighBit = bits - 1
    ds.PixelRepresentation = 0
    frames = pixels.shape[0] if pixels.ndim == (4 if color else 3) else 1
    if frames > 1:
        ds.NumberOfFrames = frames
    ds.PixelData = np.ascontiguousarray(pixels, dtype=f"<u{bits // 8}").tobytes()
