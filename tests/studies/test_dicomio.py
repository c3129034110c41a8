"""Reading DICOM as a customer's files arrive: any order, compressed in any common transfer
syntax, multi-frame, X-ray in MONOCHROME1, colour ultrasound; and a clear refusal otherwise."""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pydicom
import pytest
from pydicom.encaps import encapsulate
from pydicom.sequence import Sequence
from pydicom.uid import (
    JPEGBaseline8Bit,
    UltrasoundMultiFrameImageStorage,
    generate_uid,
)

from dicomportal.studies import render
from dicomportal.studies.demo import CT_HEAD, MR_HEAD
from dicomportal.studies.dicomio import DicomReadError, UnsupportedTransferSyntax, read_series
from dicomportal.studies.render import Plane
from dicomportal.studies.volume import Window
from tests.helpers.dicom import new_dataset, set_pixels

SOFT_TISSUE = Window(center=40, width=400)


def rendered(paths: list[Path], index: int = 5, window: Window = SOFT_TISSUE) -> np.ndarray:
    (volume,) = read_series(paths)
    return np.asarray(render.render_slice(volume, Plane.AXIAL, index, window), dtype=np.int16)


def test_the_demo_ct_is_a_head_ct_in_hounsfield_units_ordered_by_position() -> None:
    files = CT_HEAD.files()
    shuffled = random.Random(4).sample(files, len(files))

    (volume,) = read_series(shuffled)

    assert volume.modality == "CT" and volume.shape == (108, 256, 256)
    assert volume.spacing == pytest.approx((1.5, 0.957031, 0.957031))
    assert volume.value_range == (-1024.0, 2986.0)  # air to dense bone, after the rescale intercept
    positions = [float(pydicom.dcmread(f).ImagePositionPatient[2]) for f in files]
    assert volume.origin == pytest.approx((-122.0215, -122.0215, min(positions)))
    # same voxels whatever order the files come in
    np.testing.assert_array_equal(read_series(sorted(files, reverse=True))[0].voxels, volume.voxels)


def test_the_demo_mr_acquired_sagittally_is_shown_in_patient_order() -> None:
    (volume,) = read_series(MR_HEAD.files())

    # 181 sagittal images of 217 x 181 become 181 axial x 217 front-to-back x 181 right-to-left
    assert volume.shape == (181, 217, 181)
    assert render.labels(volume, Plane.SAGITTAL) == render.Labels("S", "I", "A", "P")


@pytest.mark.parametrize(
    "syntax",
    ["JPEGLosslessProcess14_1", "JPEGLSLossless", "JPEG2000Lossless", "RLELossless"],
)
def test_lossless_syntaxes_render_exactly_like_the_uncompressed_series(
    syntax: str, ct_subset: list[Path], transcoded: Callable[[str], list[Path]]
) -> None:
    files = transcoded(syntax)
    assert str(pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID) != str(
        pydicom.dcmread(ct_subset[0]).file_meta.TransferSyntaxUID
    )

    assert np.abs(rendered(files) - rendered(ct_subset)).max() == 0


def test_jpeg_baseline_8_bit_renders_within_a_small_tolerance(tmp_path: Path, ct_subset: list[Path]) -> None:
    from tests.studies.conftest import gdcm_transcode

    eight_bit, jpeg = tmp_path / "8bit", tmp_path / "jpeg"
    eight_bit.mkdir(), jpeg.mkdir()
    for path in ct_subset:  # baseline JPEG holds 8 bits: store the soft-tissue window as grey levels
        ds = pydicom.dcmread(path)
        hu = ds.pixel_array.astype(np.float32) + float(ds.RescaleIntercept)
        grey = np.clip((hu + 160) * 255 / 400, 0, 255).astype(np.uint8)
        ds.BitsAllocated, ds.BitsStored, ds.HighBit = 8, 8, 7
        ds.RescaleIntercept, ds.RescaleSlope, ds.WindowCenter, ds.WindowWidth = 0, 1, 127.5, 256
        ds.PixelData = grey.tobytes()
        ds.save_as(eight_bit / path.name, enforce_file_format=True)
        gdcm_transcode(eight_bit / path.name, jpeg / path.name, "JPEGBaselineProcess1")
    files = sorted(jpeg.iterdir())
    assert pydicom.dcmread(files[0]).file_meta.TransferSyntaxUID == JPEGBaseline8Bit

    full = Window(127.5, 256)
    difference = np.abs(rendered(files, window=full) - rendered(sorted(eight_bit.iterdir()), window=full))

    assert difference.mean() < 2 and np.percentile(difference, 99) < 16


def test_an_undecodable_transfer_syntax_is_refused_by_name(tmp_path: Path) -> None:
    ds = new_dataset("US", UltrasoundMultiFrameImageStorage)
    set_pixels(ds, np.zeros((2, 8, 8), dtype=np.uint8))
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.102"  # MPEG-4 AVC/H.264 video
    ds.PixelData = encapsulate([b"\x00\x00\x00\x01not really h264"])
    ds["PixelData"].VR = "OB"
    path = tmp_path / "video.dcm"
    ds.save_as(path, enforce_file_format=True)

    with pytest.raises(UnsupportedTransferSyntax) as refused:
        read_series([path])

    message = str(refused.value)
    assert "MPEG-4 AVC/H.264 High Profile / Level 4.1 (1.2.840.10008.1.2.4.102)" in message
    assert "cannot decode" in message


def test_an_unknown_private_syntax_is_refused_with_its_uid(tmp_path: Path) -> None:
    ds = new_dataset("CT", pydicom.uid.CTImageStorage)
    set_pixels(ds, np.zeros((8, 8), dtype=np.uint16))
    ds.file_meta.TransferSyntaxUID = "1.2.3.4.5.6.7"
    ds.PixelData = encapsulate([b"private"])
    ds["PixelData"].VR = "OB"
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True, implicit_vr=False, little_endian=True)

    with pytest.raises(UnsupportedTransferSyntax, match=r"transfer syntax 1\.2\.3\.4\.5\.6\.7"):
        read_series([buffer.getvalue()])


def test_an_enhanced_multiframe_file_reads_like_the_same_single_frame_series(ct_subset: list[Path]) -> None:
    singles = [pydicom.dcmread(p) for p in ct_subset]
    frames = list(reversed(singles))  # frames stored top to bottom: order must come from positions
    ds = new_dataset("CT", pydicom.uid.EnhancedCTImageStorage, NumberOfFrames=len(frames))
    set_pixels(ds, np.stack([f.pixel_array for f in frames]))
    shared = pydicom.Dataset()
    shared.PixelMeasuresSequence = Sequence([pydicom.Dataset()])
    shared.PixelMeasuresSequence[0].PixelSpacing = singles[0].PixelSpacing
    shared.PixelMeasuresSequence[0].SliceThickness = 1.5
    shared.PlaneOrientationSequence = Sequence([pydicom.Dataset()])
    shared.PlaneOrientationSequence[0].ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
    shared.PixelValueTransformationSequence = Sequence([pydicom.Dataset()])
    shared.PixelValueTransformationSequence[0].RescaleIntercept = -1024
    shared.PixelValueTransformationSequence[0].RescaleSlope = 1
    ds.SharedFunctionalGroupsSequence = Sequence([shared])
    per_frame = []
    for f in frames:
        item = pydicom.Dataset()
        item.PlanePositionSequence = Sequence([pydicom.Dataset()])
        item.PlanePositionSequence[0].ImagePositionPatient = f.ImagePositionPatient
        per_frame.append(item)
    ds.PerFrameFunctionalGroupsSequence = Sequence(per_frame)
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)

    (multi,) = read_series([buffer.getvalue()])
    (single,) = read_series(ct_subset)

    assert multi.shape == single.shape == (len(frames), 256, 256)
    assert multi.spacing == pytest.approx(single.spacing)
    np.testing.assert_array_equal(multi.voxels, single.voxels)


def test_a_monochrome1_xray_is_inverted_measured_and_labelled_from_its_header() -> None:
    stored = np.tile(np.arange(0, 4000, 4000 / 300, dtype=np.float64), (200, 1)).astype(np.uint16)
    stored[100, 150] = 0  # a single lowest value in the middle: the brightest point on screen
    ds = new_dataset(
        "DX",
        pydicom.uid.DigitalXRayImageStorageForPresentation,
        PatientOrientation=["L", "F"],  # a chest PA: rows run to the patient's left, columns down
        ImagerPixelSpacing=[0.2, 0.2],
        WindowCenter=1000,
        WindowWidth=2000,
    )
    set_pixels(ds, stored, photometric="MONOCHROME1")
    ds.BitsStored, ds.HighBit = 12, 11
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)

    (volume,) = read_series([buffer.getvalue()])
    image = np.asarray(render.render_slice(volume, Plane.AXIAL, 0, volume.default_window))

    assert image[100, 150] == 255  # stored 0 is white in MONOCHROME1
    assert image[10, 0] == 255 and image[10, 299] == 0  # low values (left) white, high (right) black
    assert volume.default_window == Window(center=4095 - 1000, width=2000)  # the header's, mirrored
    assert render.labels(volume, Plane.AXIAL) == render.Labels(top="H", bottom="F", left="R", right="L")
    assert volume.spacing[1:] == (0.2, 0.2)
    assert render.planes_of(volume) == (Plane.AXIAL,)  # no MPR or 3D for a single X-ray


def test_colour_ultrasound_cine_keeps_its_frames_and_region_spacing() -> None:
    frames = np.zeros((3, 32, 48, 3), dtype=np.uint8)
    frames[1, :, :, 0] = 200  # the second frame is red
    ds = new_dataset("US", UltrasoundMultiFrameImageStorage)
    set_pixels(ds, frames, photometric="RGB")
    region = pydicom.Dataset()
    region.PhysicalUnitsXDirection = region.PhysicalUnitsYDirection = 3  # cm
    region.PhysicalDeltaX = region.PhysicalDeltaY = 0.025
    ds.SequenceOfUltrasoundRegions = Sequence([region])
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)

    (volume,) = read_series([buffer.getvalue()])
    second = np.asarray(render.render_slice(volume, Plane.AXIAL, 1, volume.default_window))

    assert volume.is_color and volume.shape == (3, 32, 48)
    assert tuple(second[5, 5]) == (200, 0, 0)
    assert volume.spacing[1:] == pytest.approx((0.25, 0.25))
    assert render.slice_position(volume, Plane.AXIAL, 1) == "Frame 2"


def test_a_sagittal_series_is_reoriented_so_a_marker_lands_where_the_patient_has_it() -> None:
    # A 6 x 5 x 4 mm box; one voxel marked at patient x = 2 (left), y = 1, z = 3 (superior).
    images = []
    for x in range(6):  # one sagittal image per x, rows running down (-z), columns back (+y)
        pixels = np.zeros((4, 5), dtype=np.uint16)
        if x == 2:
            pixels[3 - 3, 1] = 1000  # row 0 is z = 3
        ds = new_dataset(
            "MR",
            pydicom.uid.MRImageStorage,
            ImagePositionPatient=[x, 0, 3],
            ImageOrientationPatient=[0, 1, 0, 0, 0, -1],
            PixelSpacing=[1, 1],
            FrameOfReferenceUID="1.2.3",
        )
        set_pixels(ds, pixels)
        images.append(ds)
    series_uid = generate_uid()
    files = []
    for ds in random.Random(1).sample(images, len(images)):
        ds.SeriesInstanceUID = series_uid
        buffer = io.BytesIO()
        ds.save_as(buffer, enforce_file_format=True)
        files.append(buffer.getvalue())

    (volume,) = read_series(files)

    assert volume.shape == (4, 5, 6)  # z (inferior to superior), y (front to back), x (right to left)
    assert np.argwhere(volume.voxels == 1000).tolist() == [[3, 1, 2]]
    assert volume.origin == (0.0, 0.0, 0.0)


def test_a_file_that_is_not_dicom_is_refused() -> None:
    with pytest.raises(DicomReadError, match="not a DICOM file"):
        read_series([b"GIF89a this is not DICOM at all" * 10])
