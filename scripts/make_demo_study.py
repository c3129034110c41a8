"""Make the viewer's demo studies (DICOM) from example volumes in Debian's package archive.

    apt-get download invesalius-examples mricron-data
    .venv/bin/pip install pyjpegls nibabel     # this script only; the app does not need them
    .venv/bin/python scripts/make_demo_study.py --invesalius invesalius-examples_*.deb \\
        --mricron mricron-data_*.deb [--out dicomportal/studies/demo_data]

- CT head: ``Cranium.inv3`` from ``invesalius-examples`` (GPL-2), an InVesalius project: a
  tar.gz holding ``matrix.dat``, an int16 Hounsfield-unit volume of 108 x 256 x 256 voxels of
  0.957 x 0.957 x 1.5 mm, described by ``main.plist``. Written as 108 axial CT images.
- MR head: ``ch2.nii.gz`` (the "Colin 27" T1 template) from ``mricron-data`` (BSD-3), a NIfTI
  volume of 181 x 217 x 181 voxels of 1 mm. Written as 181 sagittal MR images, so that the viewer's
  reorientation (sagittal acquisition shown as axial, coronal and sagittal) has real data.

Both get a synthetic patient (no real name, no birth date, ``PatientIdentityRemoved=YES``) and
UIDs derived from fixed strings (``generate_uid(PYDICOM_ROOT_UID, entropy_srcs=...)``), so running the
script twice writes the same files. Pixel data is JPEG-LS lossless. File names are the SOP
instance UIDs, so nothing but the headers tells the slice order.
"""

from __future__ import annotations

import argparse
import gzip
import io
import plistlib
import subprocess
import tarfile
import tempfile
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_ROOT_UID,
    CTImageStorage,
    ExplicitVRLittleEndian,
    JPEGLSLossless,
    MRImageStorage,
    generate_uid,
)

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "dicomportal" / "studies" / "demo_data"
CRANIUM = "usr/share/doc/invesalius-examples/examples/Cranium.inv3"
CH2 = "usr/share/mricron/templates/ch2.nii.gz"
STUDY_DATE = "20120914"


def uid(*parts: str) -> str:
    """A valid, reproducible UID: pydicom's root followed by a hash of the parts (with no prefix,
    pydicom would ignore the parts and use a random UUID)."""
    return str(generate_uid(prefix=PYDICOM_ROOT_UID, entropy_srcs=["dicomportal-demo", *parts]))


def extract_from_deb(deb: Path, member: str) -> bytes:
    """One file from a .deb, with dpkg-deb (Debian's own tool)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["dpkg-deb", "-x", str(deb), tmp], check=True)
        return (Path(tmp) / member).read_bytes()


def read_cranium(inv3: bytes) -> tuple[np.ndarray, tuple[float, float, float]]:
    """The HU volume (slices, rows, cols) and its spacing (x, y, z) from an InVesalius project."""
    with tarfile.open(fileobj=io.BytesIO(inv3), mode="r:gz") as tar:
        files = {Path(m.name).name: tar.extractfile(m) for m in tar.getmembers() if m.isfile()}
        main = plistlib.loads(files["main.plist"].read())  # type: ignore[union-attr]
        matrix = main["matrix"]
        raw = files[matrix["filename"]].read()  # type: ignore[union-attr]
    volume = np.frombuffer(raw, dtype=np.dtype(matrix["dtype"]).newbyteorder("<"))
    volume = volume.reshape(matrix["shape"])
    sx, sy, sz = (float(v) for v in main["spacing"])
    return volume, (sx, sy, sz)


def base_dataset(sop_class: str, sop_uid: str, patient: dict[str, str], study: dict[str, str]) -> Dataset:
    """The modules every image shares: SOP common, patient (synthetic), study, equipment."""
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = sop_class
    ds.file_meta.MediaStorageSOPInstanceUID = sop_uid
    ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds.file_meta.ImplementationVersionName = "DICOMPORTAL_DEMO"
    ds.SpecificCharacterSet = "ISO_IR 100"
    ds.SOPClassUID = sop_class
    ds.SOPInstanceUID = sop_uid
    ds.PatientName = patient["name"]
    ds.PatientID = patient["id"]
    ds.PatientBirthDate = ""
    ds.PatientSex = "O"
    ds.PatientIdentityRemoved = "YES"
    ds.DeidentificationMethod = "Synthetic patient; converted from a public example volume"
    ds.StudyInstanceUID = study["uid"]
    ds.StudyDate = STUDY_DATE
    ds.StudyTime = "120000"
    ds.StudyID = study["id"]
    ds.AccessionNumber = ""
    ds.ReferringPhysicianName = ""
    ds.StudyDescription = study["description"]
    ds.Manufacturer = "dicomportal demo data"
    ds.InstitutionName = ""
    return ds


def image_pixels(ds: Dataset, pixels: np.ndarray, bits_stored: int) -> None:
    """Image pixel module for unsigned 16-bit grey pixels, then compressed (JPEG-LS lossless)."""
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.Rows, ds.Columns = pixels.shape
    ds.BitsAllocated = 16
    ds.BitsStored = bits_stored
    ds.HighBit = bits_stored - 1
    ds.PixelRepresentation = 0
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()
    ds.compress(JPEGLSLossless, generate_instance_uid=False)


def write_ct(volume: np.ndarray, spacing: tuple[float, float, float], out: Path) -> int:
    """108 axial slices. InVesalius keeps rows from posterior to anterior and slice 0 at the
    bottom of the head; DICOM rows run anterior to posterior, so each slice is flipped vertically."""
    out.mkdir(parents=True, exist_ok=True)
    sx, sy, sz = spacing
    n, rows, cols = volume.shape
    patient = {"name": "Demo^Head CT", "id": "DEMO-CT-0001"}
    study = {"uid": uid("ct", "study"), "id": "DEMO1", "description": "CT head (demo)"}
    series_uid, frame_uid = uid("ct", "series"), uid("ct", "frame-of-reference")
    origin_x, origin_y = -(cols - 1) * sx / 2, -(rows - 1) * sy / 2
    for k in range(n):
        z = round(k * sz - (n - 1) * sz / 2, 3)
        ds = base_dataset(CTImageStorage, uid("ct", "image", str(k)), patient, study)
        ds.Modality = "CT"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.SeriesDescription = "Head, axial 1.5 mm"
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        ds.InstanceNumber = n - k  # numbered from the top of the head, as scanners often do
        ds.ImagePositionPatient = [round(origin_x, 4), round(origin_y, 4), z]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.PixelSpacing = [round(sy, 6), round(sx, 6)]
        ds.SliceThickness = sz
        ds.SliceLocation = z
        ds.KVP = "120"
        ds.RescaleIntercept = -1024
        ds.RescaleSlope = 1
        ds.RescaleType = "HU"
        ds.WindowCenter = 40
        ds.WindowWidth = 80
        ds.WindowCenterWidthExplanation = "BRAIN"
        stored = np.clip(volume[k, ::-1, :].astype(np.int32) + 1024, 0, 4095)
        image_pixels(ds, stored, bits_stored=12)
        ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    return n


def write_mr(nifti_gz: bytes, out: Path) -> int:
    """Sagittal slices of the Colin 27 T1 (RAS, 1 mm): rows run superior to inferior, columns
    anterior to posterior (ImageOrientationPatient 0\\1\\0\\0\\0\\-1), one slice per RAS x."""
    import nibabel as nib

    out.mkdir(parents=True, exist_ok=True)
    image = nib.Nifti1Image.from_bytes(gzip.decompress(nifti_gz))
    data = np.asarray(image.dataobj)
    affine = image.affine
    nx, ny, nz = data.shape
    patient = {"name": "Demo^Head MR", "id": "DEMO-MR-0001"}
    study = {"uid": uid("mr", "study"), "id": "DEMO2", "description": "MR head (demo)"}
    series_uid, frame_uid = uid("mr", "series"), uid("mr", "frame-of-reference")
    ras_to_lps = np.array([-1.0, -1.0, 1.0])
    for i in range(nx):
        corner_ras = (affine @ np.array([i, ny - 1, nz - 1, 1.0]))[:3]
        ds = base_dataset(MRImageStorage, uid("mr", "image", str(i)), patient, study)
        ds.Modality = "MR"
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = 1
        ds.SeriesDescription = "T1, sagittal 1 mm"
        ds.FrameOfReferenceUID = frame_uid
        ds.PositionReferenceIndicator = ""
        ds.ImageType = ["DERIVED", "SECONDARY"]
        ds.ScanningSequence = "GR"
        ds.SequenceVariant = "SP"
        ds.ScanOptions = ""
        ds.MRAcquisitionType = "3D"
        ds.InstanceNumber = i + 1
        ds.ImagePositionPatient = [round(float(v), 4) for v in corner_ras * ras_to_lps]
        ds.ImageOrientationPatient = [0, 1, 0, 0, 0, -1]
        ds.PixelSpacing = [1.0, 1.0]
        ds.SliceThickness = 1.0
        ds.WindowCenter = 110
        ds.WindowWidth = 220
        # rows: RAS z from top (k = nz-1) down; columns: RAS y from front (j = ny-1) back
        image_pixels(ds, data[i, ::-1, ::-1].T, bits_stored=8)
        ds.save_as(out / f"{ds.SOPInstanceUID}.dcm", enforce_file_format=True)
    return nx


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--invesalius", type=Path, required=True, help="invesalius-examples_*.deb")
    parser.add_argument("--mricron", type=Path, help="mricron-data_*.deb (optional: the MR study)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args()
    for old in args.out.glob("*/*.dcm"):
        old.unlink()
    volume, spacing = read_cranium(extract_from_deb(args.invesalius, CRANIUM))
    print("CT head:", write_ct(volume, spacing, args.out / "ct-head"), "images")
    if args.mricron:
        print("MR head:", write_mr(extract_from_deb(args.mricron, CH2), args.out / "mr-head"), "images")


if __name__ == "__main__":
    main()
