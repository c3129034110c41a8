"""Measurements (distance, angle) and text notes on a slice, kept per study for the user.

Values are computed here, on the server, from the points and the slice's pixel size: a distance
in mm (in pixels when the header gives no spacing), an angle in degrees. Logged-in users keep
theirs in the database (:class:`DatabaseNotes`); anonymous demo visitors in their session
(:class:`SessionNotes`, a mapping the view hands over: no Flask here).
"""

from __future__ import annotations

import math
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import Any, Protocol

from sqlalchemy import delete, func, select

from dicomportal.extensions import db
from dicomportal.models import Annotation, AnnotationKind
from dicomportal.studies.render import Mark, Plane, ViewGeometry

MAX_TEXT = 200
MAX_NOTES = 200  # per user, study and series (a bound, not a product limit anyone should meet)
MAX_SESSION_NOTES = 20  # the session is a cookie: anonymous visitors keep fewer
POINTS_NEEDED = {AnnotationKind.DISTANCE: 2, AnnotationKind.ANGLE: 3, AnnotationKind.TEXT: 1}


class AnnotationError(ValueError):
    """A measurement that cannot be saved; the message says why."""


@dataclass(frozen=True)
class Note:
    """A saved measurement or note."""

    id: int
    kind: AnnotationKind
    plane: Plane
    slice_index: int
    points: tuple[tuple[float, float], ...]
    text: str  # the note (text kind) or the unit of ``value`` (measurements)
    value: float | None

    @property
    def label(self) -> str:
        """What the list and the image show: ``"45.3 mm"``, ``"87.5°"`` or the note."""
        if self.kind is AnnotationKind.TEXT:
            return self.text
        if self.kind is AnnotationKind.ANGLE:
            return f"{self.value:.1f}°"
        return f"{self.value:.1f} {self.text}"

    @property
    def description(self) -> str:
        """A sentence for the list (screen readers read it as is)."""
        what = {
            AnnotationKind.DISTANCE: "Distance",
            AnnotationKind.ANGLE: "Angle",
            AnnotationKind.TEXT: "Note",
        }
        return f"{what[self.kind]} {self.label}, {self.plane.value} slice {self.slice_index + 1}"

    def mark(self) -> Mark:
        """How the export draws it."""
        return Mark(points=self.points, text=self.label)


@dataclass(frozen=True)
class Draft:
    """A measurement checked and computed, not yet saved."""

    kind: AnnotationKind
    plane: Plane
    slice_index: int
    points: tuple[tuple[float, float], ...]
    text: str
    value: float | None


def parse_points(text: str) -> tuple[tuple[float, float], ...]:
    """``"12.5,40 80,41"`` -> ``((12.5, 40.0), (80.0, 41.0))``.

    :raises AnnotationError: not pairs of numbers.
    """
    try:
        pairs = [tuple(float(v) for v in part.split(",")) for part in text.split()]
    except ValueError as exc:
        raise AnnotationError("Points must be x,y pairs of numbers.") from exc
    if not pairs or any(len(p) != 2 or not all(math.isfinite(v) for v in p) for p in pairs):
        raise AnnotationError("Points must be x,y pairs of numbers.")
    return tuple((round(p[0], 2), round(p[1], 2)) for p in pairs)


def draft(
    kind: str, view: ViewGeometry, slice_index: int, points: str, text: str, spacing_known: bool = True
) -> Draft:
    """Check a new measurement against the slice it was drawn on and compute its value.

    :raises AnnotationError: unknown kind, wrong number of points, a point off the image, a slice
        that does not exist, a note without text or too long.
    """
    try:
        chosen = AnnotationKind(kind)
    except ValueError as exc:
        raise AnnotationError("Choose distance, angle or note.") from exc
    pts = parse_points(points)
    if len(pts) != POINTS_NEEDED[chosen]:
        raise AnnotationError(f"A {chosen.value} needs {POINTS_NEEDED[chosen]} point(s).")
    if any(not (0 <= x <= view.width and 0 <= y <= view.height) for x, y in pts):
        raise AnnotationError("Every point must be on the image.")
    if not 0 <= slice_index < view.slices:
        raise AnnotationError("That slice does not exist.")
    note = " ".join(text.split())
    if chosen is AnnotationKind.TEXT and not note:
        raise AnnotationError("Type the note's text.")
    if len(note) > MAX_TEXT:
        raise AnnotationError(f"A note has at most {MAX_TEXT} characters.")
    value, unit = _value(chosen, pts, view.mm_per_pixel if spacing_known else None)
    return Draft(chosen, view.plane, slice_index, pts, note if chosen is AnnotationKind.TEXT else unit, value)


def _value(
    kind: AnnotationKind, pts: tuple[tuple[float, float], ...], mm_per_pixel: float | None
) -> tuple[float | None, str]:
    if kind is AnnotationKind.DISTANCE:
        pixels = math.dist(pts[0], pts[1])
        return (pixels * mm_per_pixel, "mm") if mm_per_pixel else (pixels, "px")
    if kind is AnnotationKind.ANGLE:
        (ax, ay), (bx, by), (cx, cy) = pts
        first, second = math.atan2(ay - by, ax - bx), math.atan2(cy - by, cx - bx)
        degrees = abs(math.degrees(first - second)) % 360
        return (360 - degrees if degrees > 180 else degrees), "°"
    return None, ""


class NoteStore(Protocol):
    """Where one viewer's notes live."""

    def list(self, study_key: str, series_uid: str) -> list[Note]: ...

    def add(self, study_key: str, series_uid: str, new: Draft) -> Note: ...

    def delete(self, study_key: str, series_uid: str, note_id: int) -> bool: ...


class DatabaseNotes:
    """A logged-in user's notes (the ``annotations`` table), scoped to that user."""

    def __init__(self, user_id: int) -> None:
        self.user_id = user_id

    def _scope(self, study_key: str, series_uid: str) -> Any:
        return (
            Annotation.user_id == self.user_id,
            Annotation.study_key == study_key,
            Annotation.series_uid == series_uid,
        )

    def list(self, study_key: str, series_uid: str) -> list[Note]:
        """Oldest first."""
        rows = db.session.scalars(
            select(Annotation).where(*self._scope(study_key, series_uid)).order_by(Annotation.id)
        )
        return [_note_of_row(row) for row in rows]

    def add(self, study_key: str, series_uid: str, new: Draft) -> Note:
        """Save and commit. :raises AnnotationError: over MAX_NOTES on this series."""
        count = db.session.scalar(
            select(func.count()).select_from(Annotation).where(*self._scope(study_key, series_uid))
        )
        if (count or 0) >= MAX_NOTES:
            raise AnnotationError(f"This series already has {MAX_NOTES} notes: delete some first.")
        row = Annotation(
            user_id=self.user_id,
            study_key=study_key,
            series_uid=series_uid,
            plane=new.plane.value,
            slice_index=new.slice_index,
            kind=new.kind,
            points=[list(p) for p in new.points],
            text=new.text,
            value=new.value,
        )
        db.session.add(row)
        db.session.commit()
        return _note_of_row(row)

    def delete(self, study_key: str, series_uid: str, note_id: int) -> bool:
        """Delete one of this user's notes; False when there is none with that id (another
        user's id included)."""
        done = db.session.execute(
            delete(Annotation).where(Annotation.id == note_id, *self._scope(study_key, series_uid))
        )
        db.session.commit()
        return bool(getattr(done, "rowcount", 0))


def _note_of_row(row: Annotation) -> Note:
    return Note(
        id=row.id,
        kind=row.kind,
        plane=Plane(row.plane),
        slice_index=row.slice_index,
        points=tuple((float(x), float(y)) for x, y in row.points),
        text=row.text,
        value=row.value,
    )


class SessionNotes:
    """An anonymous visitor's notes in their session (``mapping`` is the Flask session)."""

    KEY = "viewer_notes"

    def __init__(self, mapping: MutableMapping[str, Any]) -> None:
        self.mapping = mapping

    def _all(self) -> dict[str, list[dict[str, Any]]]:
        stored = self.mapping.get(self.KEY)
        return stored if isinstance(stored, dict) else {}

    def list(self, study_key: str, series_uid: str) -> list[Note]:
        """Oldest first."""
        return [_note_of_dict(d) for d in self._all().get(f"{study_key}/{series_uid}", [])]

    def add(self, study_key: str, series_uid: str, new: Draft) -> Note:
        """:raises AnnotationError: over MAX_SESSION_NOTES on this series."""
        everything = self._all()
        notes = everything.setdefault(f"{study_key}/{series_uid}", [])
        if len(notes) >= MAX_SESSION_NOTES:
            raise AnnotationError(f"The demo keeps {MAX_SESSION_NOTES} notes per series: delete some first.")
        note_id = max((d["id"] for d in notes), default=0) + 1
        notes.append(
            {
                "id": note_id,
                "kind": new.kind.value,
                "plane": new.plane.value,
                "slice": new.slice_index,
                "points": [list(p) for p in new.points],
                "text": new.text,
                "value": new.value,
            }
        )
        self.mapping[self.KEY] = everything  # reassigned, so the session knows it changed
        return _note_of_dict(notes[-1])

    def delete(self, study_key: str, series_uid: str, note_id: int) -> bool:
        """False when there is no such note."""
        everything = self._all()
        notes = everything.get(f"{study_key}/{series_uid}", [])
        kept = [d for d in notes if d["id"] != note_id]
        if len(kept) == len(notes):
            return False
        everything[f"{study_key}/{series_uid}"] = kept
        self.mapping[self.KEY] = everything
        return True


def _note_of_dict(d: dict[str, Any]) -> Note:
    return Note(
        id=int(d["id"]),
        kind=AnnotationKind(d["kind"]),
        plane=Plane(d["plane"]),
        slice_index=int(d["slice"]),
        points=tuple((float(x), float(y)) for x, y in d["points"]),
        text=str(d["text"]),
        value=None if d["value"] is None else float(d["value"]),
    )


def marks_on(notes: list[Note], plane: Plane, slice_index: int) -> tuple[Mark, ...]:
    """The notes drawn on one slice (for the export)."""
    return tuple(n.mark() for n in notes if n.plane is plane and n.slice_index == slice_index)


def delete_annotations_of_user(user_id: int) -> int:
    """Delete every measurement and note the customer kept in the viewer (the purge after the
    restore window); returns how many were deleted."""
    result = db.session.execute(delete(Annotation).where(Annotation.user_id == user_id))
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
