"""The viewer page's model: which series, plane, slice and window to show, and the state of each
tool (allowed, or locked and labelled with the cheapest plan that includes it)."""

from __future__ import annotations

from dataclasses import dataclass

from dicomportal.billing.entitlements import plans_by_tool
from dicomportal.studies import mesh, render, render3d, tools
from dicomportal.studies.images import parse_window
from dicomportal.studies.render import Plane, Preset, ScaleBar, ViewError, ViewGeometry
from dicomportal.studies.sources import OpenedStudy, SeriesInfo, Study, series_volume, studies_like
from dicomportal.studies.volume import Volume, Window

PLANE_TOOL = {Plane.AXIAL: tools.SLICES, Plane.CORONAL: tools.MPR, Plane.SAGITTAL: tools.MPR}


@dataclass(frozen=True)
class ToolState:
    """A tool as the page shows it."""

    tool: tools.Tool
    allowed: bool
    plan: str | None  # the cheapest plan that includes it (its label)


@dataclass(frozen=True)
class PlaneView:
    """One plane's display facts for the page and its script."""

    geometry: ViewGeometry
    scale_bar: ScaleBar
    position_start: float | None  # patient coordinate (mm) of slice 0; None for 2D images
    position_step: float
    position_letters: tuple[str, str]  # the direction of positive and of negative coordinates


@dataclass(frozen=True)
class SeriesView:
    """What one viewport shows: a series, the plane and slice, the window."""

    study: Study
    series: SeriesInfo
    volume: Volume
    planes: dict[Plane, PlaneView]
    plane: Plane
    index: int
    window: Window
    presets: tuple[Preset, ...]

    @property
    def current(self) -> PlaneView:
        """The plane on screen."""
        return self.planes[self.plane]

    @property
    def position(self) -> str:
        """Where the slice is in the patient, e.g. ``"S 20.3 mm"``."""
        return render.slice_position(self.volume, self.plane, self.index)

    @property
    def alt(self) -> str:
        """The image's text alternative: series, plane and slice, position, window."""
        where = self.position
        return (
            f"{self.study.title}, {self.volume.series_description}: {self.plane.value} slice "
            f"{self.index + 1} of {self.current.geometry.slices}{', ' + where if where else ''}, "
            f"window width {self.window.width:g}, level {self.window.center:g}"
        )

    @property
    def preset_code(self) -> str:
        """The preset whose window is on screen, or ``custom``."""
        return next((p.code for p in self.presets if p.window == self.window), "custom")


@dataclass(frozen=True)
class ViewerPage:
    """Everything the viewer page shows."""

    opened: OpenedStudy
    main: SeriesView
    other: SeriesView | None  # the right-hand viewport when comparing
    tools: dict[str, ToolState]
    modes_3d: tuple[render3d.Mode, ...]
    threshold: mesh.Threshold
    studies: list[Study]  # what "Compare with" offers
    notice: str | None  # e.g. a plane the plan lacks was asked for and the axial view shown instead
    show_3d: bool = False  # the 3D view instead of a slice
    mode: render3d.Mode = render3d.Mode.MIP
    angle: int = 0

    def tool(self, code: str) -> ToolState:
        """The state of one tool, by code."""
        return self.tools[code]


def tool_states(opened: OpenedStudy) -> dict[str, ToolState]:
    """Every tool with whether this viewer may use it and the plan that includes it."""
    plans = plans_by_tool()
    return {t.code: ToolState(t, opened.allows(t), plans.get(t.code)) for t in tools.TOOLS}


def plane_view(volume: Volume, plane: Plane) -> PlaneView:
    """The display facts of one plane."""
    view = render.geometry(volume, plane)
    if not volume.is_3d or volume.origin is None:
        return PlaneView(view, render.scale_bar(view), None, 1.0, ("", ""))
    axis = {Plane.AXIAL: 0, Plane.CORONAL: 1, Plane.SAGITTAL: 2}[plane]
    patient_axis = 2 - axis
    letters = {0: ("L", "R"), 1: ("P", "A"), 2: ("S", "I")}[patient_axis]
    return PlaneView(view, render.scale_bar(view), volume.origin[patient_axis], volume.spacing[axis], letters)


def series_view(
    study: Study,
    series_uid: str | None,
    plane: Plane,
    index: int | None,
    window: Window | None,
    preset: str | None = None,
) -> SeriesView:
    """One viewport's state; a missing index means the middle slice.

    :raises StudyNotFound: no such series.
    :raises ViewError: a plane the series has not.
    """
    info = study.series_info(series_uid) if series_uid else study.series[0]
    volume = series_volume(study, info.uid)
    planes = {p: plane_view(volume, p) for p in render.planes_of(volume)}
    if plane not in planes:
        raise ViewError(f"This series has no {plane.value} view.")
    slices = planes[plane].geometry.slices
    chosen = slices // 2 if index is None else min(max(index, 0), slices - 1)
    presets = render.presets_for(volume)
    by_code = {p.code: p.window for p in presets}
    return SeriesView(
        study,
        info,
        volume,
        planes,
        plane,
        chosen,
        by_code.get(preset or "", window or volume.default_window),
        presets,
    )


def viewer_page(
    opened: OpenedStudy,
    series_uid: str | None = None,
    plane: str | None = None,
    index: str | None = None,
    center: str | None = None,
    width: str | None = None,
    preset: str | None = None,
    compare_with: Study | None = None,
    mode: str | None = None,
    angle: str | None = None,
) -> ViewerPage:
    """The page for ``opened`` as the query asks. A view the plan lacks, or bad window values,
    fall back to the axial slice with a notice saying why (the image URLs refuse anyway).

    :raises StudyNotFound: no such series.
    """
    states = tool_states(opened)
    asked, show_3d, notice = _asked_view(opened, states, plane)
    chosen_index = int(index) if index and index.lstrip("-").isdigit() else None
    try:
        main = series_view(opened.study, series_uid, asked, chosen_index, parse_window(center, width), preset)
    except ViewError as exc:
        main = series_view(opened.study, series_uid, Plane.AXIAL, None, None)
        notice = str(exc)
    modes = render3d.modes_for(main.volume) if main.volume.supports_mpr else ()
    if show_3d and not modes:
        notice, show_3d = "This series is not a 3D volume: it has no 3D view.", False
    return ViewerPage(
        opened=opened,
        main=main,
        other=_other_view(compare_with, main.plane) if compare_with is not None else None,
        tools=states,
        modes_3d=modes,
        threshold=mesh.default_threshold(main.volume),
        studies=studies_like(opened),
        notice=notice,
        show_3d=show_3d,
        mode=render3d.Mode(mode) if mode in modes else render3d.Mode.MIP,
        angle=int(angle) % 360 // render3d.ANGLE_STEP * render3d.ANGLE_STEP
        if angle and angle.isdigit()
        else 0,
    )


def _asked_view(
    opened: OpenedStudy, states: dict[str, ToolState], plane: str | None
) -> tuple[Plane, bool, str | None]:
    """The plane to show, whether the 3D view is asked for, and why not when the plan lacks it."""
    show_3d = plane == "3d" and opened.allows(tools.VOLUME_3D)
    notice = (
        f"The 3D view is included in the {states['3d'].plan} plan." if plane == "3d" and not show_3d else None
    )
    asked = Plane(plane) if plane in tuple(Plane) else Plane.AXIAL
    if not opened.allows(PLANE_TOOL[asked]):
        state = states[PLANE_TOOL[asked].code]
        notice = f"The {asked.value} view is part of {state.tool.name}, included in the {state.plan} plan."
        asked = Plane.AXIAL
    return asked, show_3d, notice


def _other_view(study: Study, plane: Plane) -> SeriesView:
    """The right-hand viewport when comparing: the other study's first series, middle slice, in
    the same plane when it has it."""
    planes = render.planes_of(series_volume(study, study.series[0].uid))
    return series_view(study, None, plane if plane in planes else Plane.AXIAL, None, None)
