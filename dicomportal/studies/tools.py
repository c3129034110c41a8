"""The viewer's tools. Which plan includes which tool is catalog data (``billing/catalog.toml``,
the ``tools`` of each plan); ``billing.entitlements`` answers what a customer's plan allows."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tool:
    """A tool as the viewer names it; ``code`` is what the catalog lists."""

    code: str
    name: str


SLICES = Tool("slices", "2D slices")
VOLUME_3D = Tool("3d", "3D volume rendering and MIP")
SHARE = Tool("share", "Share by link")
MEASURE = Tool("measure", "Measurements and annotations")
EXPORT = Tool("export", "Export images and video")
MPR = Tool("mpr", "Multi-planar reconstruction (MPR)")
COMPARE = Tool("compare", "Compare side by side")
SEGMENT = Tool("segment", "Segmentation and STL export")

TOOLS: tuple[Tool, ...] = (SLICES, VOLUME_3D, SHARE, MEASURE, EXPORT, MPR, COMPARE, SEGMENT)
BY_CODE = {tool.code: tool for tool in TOOLS}
ALL = frozenset(BY_CODE)
