"""The public demo in Chromium, as a visitor uses it: scroll, change the preset, switch to coronal,
measure a distance, turn the 3D view, export a PNG and download an STL."""

from __future__ import annotations

import io
import re
from pathlib import Path
from typing import Any

import pytest
import trimesh
from PIL import Image

SHOTS = Path("test-artifacts")
MM_PER_PIXEL = 0.957031  # the demo CT's pixel spacing


def image_state(page: Any) -> dict[str, Any]:
    """The main image's URL, natural size and whether it has loaded."""
    return page.evaluate(
        """() => { const i = document.querySelector('#viewport-main .viewport-image');
                   return {src: i.src, width: i.naturalWidth}; }"""
    )


def wait_for_image(page: Any, pattern: str) -> dict[str, Any]:
    page.wait_for_function(
        """(pattern) => { const i = document.querySelector('#viewport-main .viewport-image');
                          return new RegExp(pattern).test(i.src) && i.complete && i.naturalWidth > 0; }""",
        arg=pattern,
        timeout=30_000,
    )
    return image_state(page)


def click_on_picture(page: Any, x: float, y: float, natural: tuple[int, int]) -> None:
    """Click the point (x, y) of the picture, in its own pixels (the frame letterboxes it)."""
    box = page.locator("#viewport-main .viewport-image").bounding_box()
    scale = min(box["width"] / natural[0], box["height"] / natural[1])
    left = box["x"] + (box["width"] - natural[0] * scale) / 2
    top = box["y"] + (box["height"] - natural[1] * scale) / 2
    page.mouse.click(left + x * scale, top + y * scale)


@pytest.mark.browser
def test_demo_viewer_tour(page: Any, live_server: str, tmp_path: Path) -> None:
    from playwright.sync_api import expect

    SHOTS.mkdir(exist_ok=True)
    page.goto(f"{live_server}/demo")
    expect(page).to_have_url(re.compile(r"/viewer/demo$"))
    wait_for_image(page, r"/axial/54\.png")
    expect(page.locator(".not-diagnostic")).to_contain_text("Not for diagnostic use")
    for plan in ("Patient", "Professional", "MD", "Surgical"):
        expect(page.locator(f".tool-plan:text-is('{plan}')").first).to_be_visible()

    # Scroll: arrow keys and the mouse wheel move through the slices.
    page.locator("#viewport-main .viewport-frame").focus()
    for _ in range(3):
        page.keyboard.press("ArrowDown")
    expect(page.locator("#slice-number")).to_have_text("58 / 108")
    page.locator("#viewport-main .viewport-frame").hover()
    page.mouse.wheel(0, 120)
    expect(page.locator("#slice-number")).to_have_text("59 / 108")
    wait_for_image(page, r"/axial/58\.png")

    # Change the preset: OHIF's bone window.
    page.select_option("#preset-select", "bone")
    state = wait_for_image(page, r"/axial/58\.png\?c=480&w=2500")
    expect(page.locator("#status-main")).to_contain_text("W 2500 L 480")
    assert "window width 2500, level 480" in page.locator("#viewport-main .viewport-image").get_attribute(
        "alt"
    )

    # Coronal, in true proportions (108 slices of 1.5 mm: 169 rows of 0.957 mm).
    page.get_by_label("Coronal").check()
    state = wait_for_image(page, r"/coronal/128\.png")
    assert state["width"] == 256
    expect(page.locator(".edge-top").first).to_have_text("S")
    page.screenshot(path=str(SHOTS / "viewer-coronal.png"))

    # Measure a distance of 100 image pixels across: 95.7 mm at 0.957 mm a pixel.
    page.get_by_role("button", name="Distance", exact=True).click()
    click_on_picture(page, 60, 80, (256, 169))
    click_on_picture(page, 160, 80, (256, 169))
    note = page.locator("#notes li[data-kind=distance]")
    expect(note).to_have_count(1)
    (a, b) = [tuple(map(float, p.split(","))) for p in note.get_attribute("data-points").split()]
    expected_mm = ((a[0] - b[0]) ** 2 + (a[1] - b[1]) ** 2) ** 0.5 * MM_PER_PIXEL
    label = note.get_attribute("data-label")
    assert label == f"{expected_mm:.1f} mm", (label, a, b)
    assert abs(expected_mm - 95.7) < 1.0
    expect(note).to_contain_text("coronal slice 129")
    expect(page.locator("#viewport-main .viewport-overlay text")).to_have_text(label)
    page.get_by_role("button", name="Distance", exact=True).click()  # done measuring

    # Export the view as PNG: labels, scale bar and the measurement drawn in, twice the size.
    with page.expect_download() as download:
        page.locator("#export-png").click()
    exported = Image.open(download.value.path())
    assert exported.format == "PNG" and exported.size == (512, 338 + 52)  # with caption and footer bars
    page.screenshot(path=str(SHOTS / "viewer-measured.png"))

    # Download the bone surface as STL: a closed mesh.
    with page.expect_download() as download:
        page.get_by_role("button", name="Download STL").click()
    assert download.value.suggested_filename.endswith(".stl")
    surface = trimesh.load(io.BytesIO(Path(download.value.path()).read_bytes()), file_type="stl")
    assert surface.is_watertight and len(surface.faces) > 10_000

    # 3D: bone volume rendering, turned by the angle slider, then rotating by itself.
    page.get_by_label("3D", exact=True).check()
    page.select_option("#mode-select", "bone")
    wait_for_image(page, r"/3d/bone/0\.png")
    page.locator("#angle-range").focus()
    for _ in range(3):
        page.keyboard.press("ArrowRight")
    wait_for_image(page, r"/3d/bone/30\.png")
    page.screenshot(path=str(SHOTS / "viewer-3d.png"))
    page.get_by_role("button", name="Rotate").click()
    page.wait_for_function("() => Number(document.getElementById('angle-range').value) >= 60", timeout=30_000)
    page.get_by_role("button", name="Stop rotating").click()
    expect(page.locator("#status-main")).to_contain_text("3D volume rendering, bone, turned")

    # The page ends with the way to the plans.
    expect(page.locator(".demo-cta a", has_text="Compare plans and prices")).to_have_attribute(
        "href", "/plans/"
    )


@pytest.mark.browser
def test_compare_scrolls_both_series_together(page: Any, live_server: str) -> None:
    from playwright.sync_api import expect

    page.goto(f"{live_server}/viewer/demo/compare?with=demo-mr")
    page.wait_for_function(
        "() => [...document.querySelectorAll('.viewport-image')].every(i => i.complete && i.naturalWidth > 0)"
    )
    page.locator("#viewport-main .viewport-frame").focus()
    page.keyboard.press("End")

    expect(page.locator("#status-main")).to_contain_text("Axial 108/108")
    expect(page.locator("#status-other")).to_contain_text("Axial 181/181")  # the same relative position
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "viewer-compare.png"), full_page=True)
