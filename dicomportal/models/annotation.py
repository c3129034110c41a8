"""Measurements and notes a customer keeps on a study in the viewer."""

from __future__ import annotations

import enum
from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from dicomportal.extensions import db
from dicomportal.models.types import UTCDateTime, utcnow, value_enum


class AnnotationKind(enum.StrEnum):
    DISTANCE = "distance"  # two points; value in mm
    ANGLE = "angle"  # three points, the vertex in the middle; value in degrees
    TEXT = "text"  # one point and a note


class Annotation(db.Model):  # type: ignore[name-defined,misc]
    """One measurement or note on one slice of one series, owned by one user."""

    __tablename__ = "annotations"
    __table_args__ = (Index("ix_annotations_user_study", "user_id", "study_key", "series_uid"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    study_key: Mapped[str] = mapped_column(String(100))
    series_uid: Mapped[str] = mapped_column(String(64))
    plane: Mapped[str] = mapped_column(String(10))
    slice_index: Mapped[int] = mapped_column(Integer)
    kind: Mapped[AnnotationKind] = mapped_column(value_enum(AnnotationKind, length=10))
    points: Mapped[list[Any]] = mapped_column(JSON)  # [[x, y], ...] in the rendered slice's pixels
    text: Mapped[str] = mapped_column(String(200), default="")
    value: Mapped[float | None] = mapped_column(Float)  # mm or degrees, computed when saved
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
