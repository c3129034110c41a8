"""DICOM files for the tests: made with pydicom, or re-encoded by GDCM (an encoder independent of
the viewer's decoders)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, generate_uid


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
