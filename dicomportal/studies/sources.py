"""Opening a study: the one place that turns a study key and a user into something to view.

Every viewer route goes through :func:`open_study`. It knows the public demo studies
(``demo``, ``demo-mr``: anyone, every tool) and the same data as customers' sample studies
(``sample``, ``sample-mr``: a logged-in customer with a live subscription, with their plan's
tools), customers' own stored studies (``s<id>``: local disk or Orthanc, their owner only, with
their plan's tools) and stored studies opened through a share link (``shared-<token>``: anyone
with the link, read-only tools).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import pydicom

from dicomportal.billing.entitlements import entitlements_for, plans_by_tool
from dicomportal.models import Study as StoredStudy
from dicomportal.studies import cache, demo, errors, library, shares
from dicomportal.studies.dicomio import DicomReadError, Source, read_series
from dicomportal.studies.tools import ALL, Tool
from dicomportal.studies.volume import Volume


class Viewer(Protocol):
    """The user asking: Flask-Login's ``current_user`` (anonymous or not), read only when the
    study needs it, so the public demo never loads a session or a user row."""

    @property
    def is_authenticated(self) -> bool: ...

    @property
    def id(self) -> int: ...


class StudyNotFound(LookupError):
    """No study with this key (or not one this user may see: the same answer, a 404)."""


class LinkClosed(StudyNotFound):
    """A share link that does not open (any more): expired, revoked, or its study gone. Still a 404,
    but the recipient is told it is the link, not a typo."""


class LoginRequired(PermissionError):
    """Customers' studies need a login."""


class NoViewerAccess(PermissionError):
    """Logged in, but no live subscription lets this customer open studies."""


class ToolNotInPlan(PermissionError):
    """The customer's plan does not include this tool; the message names the plan that does."""

    def __init__(self, tool: Tool, needed_plan: str | None, current_plan: str | None) -> None:
        self.tool, self.needed_plan = tool, needed_plan
        where = f"the {needed_plan} plan" if needed_plan else "a higher plan"
        yours = f"Your {current_plan} plan" if current_plan else "Your plan"
        super().__init__(
            f"{tool.name} is included in {where} and above. {yours} does not include it: "
            "compare plans on the pricing page to change."
        )


@dataclass(frozen=True)
class SeriesInfo:
    """One series of a study as the viewer lists it."""

    uid: str
    description: str
    modality: str
    images: int


@dataclass(frozen=True, eq=False)
class Study:
    """A study the viewer can show: its key in URLs, its series, and how to get their files."""

    key: str
    title: str
    summary: str
    source_id: str  # what the caches key on: the same data under two keys is decoded once
    series: tuple[SeriesInfo, ...]
    files: Callable[[str], Iterable[Source]] = field(repr=False)  # series uid -> its DICOM files

    def series_info(self, uid: str) -> SeriesInfo:
        """:raises StudyNotFound: no such series in this study."""
        for info in self.series:
            if info.uid == uid:
                return info
        raise StudyNotFound(f"No series {uid} in this study.")


@dataclass(frozen=True)
class OpenedStudy:
    """A study opened by someone: which tools they may use on it."""

    study: Study
    tools: frozenset[str]
    demo: bool  # the public demo: every tool, each labelled with the plan that includes it
    plan_name: str | None  # the customer's plan (None on the demo)
    stored_id: int | None = None  # a customer's stored study (its Study row id)
    share_id: int | None = None  # opened through this share link (read-only, no account)

    def allows(self, tool: Tool) -> bool:
        """Whether ``tool`` may be used here."""
        return tool.code in self.tools

    def require(self, tool: Tool) -> None:
        """:raises ToolNotInPlan: the customer's plan lacks ``tool``."""
        if not self.allows(tool):
            raise ToolNotInPlan(tool, plans_by_tool().get(tool.code), self.plan_name)


DEMO_KEYS = {"demo": demo.CT_HEAD, "demo-mr": demo.MR_HEAD}
STORED_PREFIX = "s"  # a customer's stored study: ``s<id>``
SHARED_PREFIX = "shared-"  # a study opened through a share link: ``shared-<token>``
# What a share link's recipient may do: look, never change, export or spend the owner's credits
# (a 3D view opens only if the owner has built it).
SHARED_TOOLS = frozenset({"slices", "mpr", "3d"})
SAMPLE_KEYS = {"sample": demo.CT_HEAD, "sample-mr": demo.MR_HEAD}


def open_study(key: str, user: Viewer | None) -> OpenedStudy:
    """The study ``key`` as ``user`` (None or not authenticated: anonymous) may see it.

    :raises StudyNotFound: unknown key.
    :raises LoginRequired: a customer's study and nobody is logged in.
    :raises NoViewerAccess: logged in without a subscription that allows viewing.
    """
    if key in DEMO_KEYS:
        return OpenedStudy(_shipped_study(key, DEMO_KEYS[key]), ALL, demo=True, plan_name=None)
    if key.startswith(SHARED_PREFIX):
        return _open_shared(key, key.removeprefix(SHARED_PREFIX))
    stored_id = _stored_id(key)
    if key not in SAMPLE_KEYS and stored_id is None:
        raise StudyNotFound(f"No study {key!r}.")
    if user is None or not user.is_authenticated:
        raise LoginRequired("Log in to open your studies.")
    rights = entitlements_for(user.id)
    if not rights.can_view:
        raise NoViewerAccess("Opening studies needs a subscription. Choose a plan to start.")
    if stored_id is not None:
        return _open_own(key, user.id, stored_id, rights.tools, rights.plan_name)
    return OpenedStudy(
        _shipped_study(key, SAMPLE_KEYS[key]), rights.tools, demo=False, plan_name=rights.plan_name
    )


def _stored_id(key: str) -> int | None:
    digits = key.removeprefix(STORED_PREFIX)
    return int(digits) if key.startswith(STORED_PREFIX) and digits.isdigit() and len(digits) < 12 else None


def _open_own(
    key: str, user_id: int, study_id: int, granted: frozenset[str], plan: str | None
) -> OpenedStudy:
    try:
        row = library.get_study(user_id, study_id)
    except errors.StudyNotFound as exc:
        raise StudyNotFound(str(exc)) from exc
    except errors.StudiesUnavailable as exc:
        raise NoViewerAccess(str(exc)) from exc
    return OpenedStudy(_stored_study(key, row), granted, demo=False, plan_name=plan, stored_id=row.id)


def _open_shared(key: str, token: str) -> OpenedStudy:
    try:
        opened = shares.open_share(token)
    except errors.StudyNotFound as exc:
        raise LinkClosed(str(exc)) from exc
    owner = entitlements_for(opened.share.user_id)
    return OpenedStudy(
        _stored_study(key, opened.study),
        owner.tools & SHARED_TOOLS,
        demo=False,
        plan_name=owner.plan_name,
        stored_id=opened.study.id,
        share_id=opened.share.id,
    )


def _stored_study(key: str, row: StoredStudy) -> Study:
    """A stored study as the viewer shows it; its files are read from the store only when a
    series is decoded (the per-process cache keeps the result)."""
    by_series = {series.series_instance_uid: series for series in row.series}

    def files(uid: str) -> Iterable[Source]:
        series = by_series[uid]
        store = library.store_of(row)
        return [store.get(instance.storage_ref) for instance in series.instances]

    return Study(
        key=key,
        title=row.description or "Untitled study",
        summary=f"{row.modalities or 'DICOM'}, {row.image_count} images in {row.series_count} series",
        source_id=f"stored-{row.id}",
        series=tuple(
            SeriesInfo(s.series_instance_uid, s.description, s.modality, s.image_count) for s in row.series
        ),
        files=files,
    )


def studies_like(opened: OpenedStudy) -> list[Study]:
    """The studies this viewer may compare ``opened`` with: the demo's for the demo, the
    customer's samples for a customer (with the stored study they opened), only the shared study
    through a link."""
    if opened.share_id is not None:
        return [opened.study]  # a link opens one study, nothing else
    keys = DEMO_KEYS if opened.demo else SAMPLE_KEYS
    shipped = [_shipped_study(key, data) for key, data in keys.items()]
    return [opened.study, *shipped] if opened.stored_id is not None else shipped


def find_study(opened: OpenedStudy, key: str) -> Study:
    """Another study the same viewer may open (for comparing).

    :raises StudyNotFound: not one of :func:`studies_like`.
    """
    for study in studies_like(opened):
        if study.key == key:
            return study
    raise StudyNotFound(f"No study {key!r}.")


def series_volume(study: Study, series_uid: str) -> Volume:
    """The decoded series, from the per-process cache (decoded at most once per process).

    :raises StudyNotFound: no such series.
    :raises DicomReadError: its files cannot be shown.
    """
    study.series_info(series_uid)

    def decode() -> Volume:
        for volume in read_series(study.files(series_uid)):
            if volume.series_uid == series_uid:
                return volume
        raise DicomReadError("The series has no images.")

    return cache.volumes.get_or_make((study.source_id, series_uid), decode)


@functools.cache
def _series_of_folder(data: demo.DemoStudy) -> tuple[tuple[SeriesInfo, tuple[str, ...]], ...]:
    """Each series in a shipped folder with its files, from the headers only (no pixel data)."""
    found: dict[str, tuple[SeriesInfo, list[str]]] = {}
    for path in data.files():
        ds = pydicom.dcmread(path, stop_before_pixels=True)
        uid = str(ds.SeriesInstanceUID)
        info, files = found.get(uid) or (
            SeriesInfo(uid, str(ds.get("SeriesDescription", "")), str(ds.Modality), 0),
            [],
        )
        files.append(str(path))
        found[uid] = (SeriesInfo(uid, info.description, info.modality, len(files)), files)
    return tuple((info, tuple(files)) for info, files in found.values())


@functools.cache
def _shipped_study(key: str, data: demo.DemoStudy) -> Study:
    series = _series_of_folder(data)
    files = {info.uid: paths for info, paths in series}
    return Study(
        key=key,
        title=data.title,
        summary=data.summary,
        source_id=data.source_id,
        series=tuple(info for info, _ in series),
        files=lambda uid: files[uid],
    )
