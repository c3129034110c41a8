"""What the viewer draws: windows named as OHIF names them, planes with true proportions, edge
labels, a scale bar, 3D frames, and an STL that a slicer accepts as a closed surface."""

from __future__ import annotations

import io
import threading

import numpy as np
import pytest
import trimesh

from dicomportal.studies import cache, mesh, render, render3d
from dicomportal.studies.demo import CT_HEAD
from dicomportal.studies.dicomio import read_series
from dicomportal.studies.render import Plane
from dicomportal.studies.volume import Volume, Window


@pytest.fixture(scope="module")
def ct() -> Volume:
    (volume,) = read_series(CT_HEAD.files())
    return volume


def test_ct_presets_carry_ohifs_names_and_values(ct: Volume) -> None:
    presets = {p.name: (p.window.width, p.window.center) for p in render.presets_for(ct)}

    assert presets == {
        "Default": (80, 40),  # the series' own window (its header says brain)
        "Soft tissue": (400, 40),
        "Lung": (1500, -600),
        "Liver": (150, 90),
        "Bone": (2500, 480),
        "Brain": (80, 40),
    }


def test_window_maps_its_range_to_black_through_white() -> None:
    values = np.array([[-200.0, -160.0, 40.0, 240.0, 900.0]], dtype=np.float32)

    assert render.apply_window(values, Window(center=40, width=400)).tolist() == [[0, 0, 127, 255, 255]]


def test_coronal_and_sagittal_keep_true_proportions(ct: Volume) -> None:
    axial, coronal = render.geometry(ct, Plane.AXIAL), render.geometry(ct, Plane.CORONAL)

    assert (axial.width, axial.height, axial.slices) == (256, 256, 108)
    # 108 slices 1.5 mm apart are 162 mm tall: 169 pixels of 0.957 mm
    assert (coronal.width, coronal.height, coronal.slices) == (256, 169, 256)
    assert coronal.mm_per_pixel == pytest.approx(0.957031)
    image = render.render_slice(ct, Plane.SAGITTAL, 128, Window(40, 400))
    assert image.size == (256, 169)


def test_each_plane_is_labelled_with_patient_directions(ct: Volume) -> None:
    assert render.labels(ct, Plane.AXIAL) == render.Labels(top="A", bottom="P", left="R", right="L")
    assert render.labels(ct, Plane.CORONAL) == render.Labels(top="S", bottom="I", left="R", right="L")
    assert render.labels(ct, Plane.SAGITTAL) == render.Labels(top="S", bottom="I", left="A", right="P")


def test_the_face_is_at_the_top_of_an_axial_slice_and_the_skull_top_at_the_top_of_a_coronal(
    ct: Volume,
) -> None:
    # Air in the frontal sinus sits in front of the brain: dark pixels in the upper half at mid-height.
    axial = np.asarray(render.render_slice(ct, Plane.AXIAL, 54, Window(40, 400)))
    head_rows = np.flatnonzero((axial > 60).sum(axis=1) > 20)
    assert head_rows[0] < 256 - head_rows[-1] + 40  # the head reaches the top edge region first
    coronal = np.asarray(render.render_slice(ct, Plane.CORONAL, 128, Window(480, 2500)))
    bone_rows = np.flatnonzero((coronal > 150).sum(axis=1) > 5)
    assert bone_rows[-1] > 100  # the skull base is low in the picture, the vertex near the top
    assert render.slice_position(ct, Plane.AXIAL, 0) == "I 80.2 mm"


def test_the_scale_bar_is_a_round_length_about_a_fifth_of_the_image(ct: Volume) -> None:
    bar = render.scale_bar(render.geometry(ct, Plane.AXIAL))

    assert bar.length_mm == 20  # the image is 245 mm wide: a fifth is 49 mm, the round length below is 20
    assert bar.length_px == pytest.approx(20 / 0.957031)


def test_rendering_is_deterministic(ct: Volume) -> None:
    first = render.png_bytes(render.render_slice(ct, Plane.CORONAL, 100, Window(40, 400)))

    assert render.png_bytes(render.render_slice(ct, Plane.CORONAL, 100, Window(40, 400))) == first


def test_3d_frames_turn_the_patient_and_mip_from_behind_mirrors_the_front(ct: Volume) -> None:
    prepared = render3d.prepare(ct)

    front = np.asarray(render3d.render_frame(prepared, render3d.Mode.MIP, 0).convert("L"), dtype=np.float32)
    back = np.asarray(render3d.render_frame(prepared, render3d.Mode.MIP, 180).convert("L"), dtype=np.float32)
    side = np.asarray(render3d.render_frame(prepared, render3d.Mode.MIP, 90).convert("L"), dtype=np.float32)

    assert front.shape == (256, 256)
    mirrored = np.abs(front - back[:, ::-1]).mean()
    assert mirrored < 6 < np.abs(front - side).mean()


def test_bone_and_skin_renderings_show_an_object_on_black(ct: Volume) -> None:
    prepared = render3d.prepare(ct)

    for mode in (render3d.Mode.BONE, render3d.Mode.SKIN):
        frame = np.asarray(render3d.render_frame(prepared, mode, 30))
        lit = (frame.sum(axis=2) > 60).mean()
        assert 0.05 < lit < 0.8, (mode, lit)
        assert frame[0, 0].tolist() == [0, 0, 0]


def test_bone_stl_is_a_closed_mesh_in_patient_millimetres(ct: Volume) -> None:
    stl = mesh.surface_stl(ct, mesh.BONE)

    surface = trimesh.load(io.BytesIO(stl), file_type="stl")
    assert surface.is_watertight and surface.is_winding_consistent
    assert surface.volume > 0
    low, high = surface.bounds
    # the slices span -80.25 to 80.25 mm; the closing cap lies at most half a (3 mm) voxel beyond
    assert low[2] >= -82 and high[2] <= 82
    assert (high - low)[0] == pytest.approx(140, abs=25)  # a skull is about 14 cm wide


def test_a_threshold_that_keeps_nothing_is_refused(ct: Volume) -> None:
    with pytest.raises(mesh.SegmentationError, match="selects nothing"):
        mesh.surface_stl(ct, mesh.Threshold(5000, 6000))
    with pytest.raises(mesh.SegmentationError, match="lower threshold must be below"):
        mesh.Threshold(300, 200)


def test_the_cache_makes_each_value_once_however_many_threads_ask() -> None:
    store: cache.LruCache[bytes] = cache.LruCache(1000, len)
    calls: list[int] = []

    def slow() -> bytes:
        calls.append(1)
        threading.Event().wait(0.05)
        return b"x" * 10

    threads = [threading.Thread(target=store.get_or_make, args=("key", slow)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()

    assert len(calls) == 1 and store.made == 1


def test_the_cache_evicts_the_least_recently_used_beyond_its_budget() -> None:
    store: cache.LruCache[bytes] = cache.LruCache(25, len)
    store.put("a", b"1" * 10)
    store.put("b", b"2" * 10)
    store.get("a")
    store.put("c", b"3" * 10)

    assert store.get("b") is None and store.get("a") is not None and store.size_bytes == 20
