"""DICOM studies in a customer's cloud storage: Study -> Series -> Instance (one row per stored file).

Patient-free by design: no PatientName, PatientID, BirthDate or any other patient attribute is
copied into these tables. The files themselves (in the study store) are the customer's own data.

Why three tables and not one: the viewer and share links address a series and a single image by
id (another account's id must be a 404, checked in one query), an image's file is found by its
``storage_ref``, and the listing reads only ``studies`` (counts and sizes are kept on the Study
row, so an account with a thousand studies lists in one small query).
"""

from __future__ import annotations

import enum
from datetime import date, datetime

from sqlalchemy import BigInteger, Date, ForeignKey, Index, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from dicomportal.extensions import db
from dicomportal.models.types import UTCDateTime, utcnow, value_enum


class StudyStatus(enum.StrEnum):
    # Rows are written before the files (studies/ingest.py): an upload in progress is PENDING,
    # invisible to the customer but counted against the quota so two uploads cannot both pass.
    PENDING = "pending"
    READY = "ready"  # every file stored: listed, viewable
    FAILED = "failed"  # an upload that did not finish: its files are being removed, then its rows
    DELETED = "deleted"  # deleted by the customer or purged: a tombstone once its files are gone


class Study(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "studies"
    __table_args__ = (
        # UIDs are rewritten per upload (studies/files.py), so a stored study UID is unique per store.
        UniqueConstraint("storage_backend", "study_instance_uid", name="uq_studies_backend_uid"),
        Index("ix_studies_user_status", "user_id", "status"),
        Index("ix_studies_status_updated_at", "status", "updated_at"),  # the sweep's query
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    status: Mapped[StudyStatus] = mapped_column(value_enum(StudyStatus), default=StudyStatus.PENDING)
    storage_backend: Mapped[str] = mapped_column(String(20))  # "local" or "orthanc"
    study_instance_uid: Mapped[str] = mapped_column(String(64))  # as stored (rewritten on ingest)
    modalities: Mapped[str] = mapped_column(String(64), default="")  # "CT" or "CT, SR"
    study_date: Mapped[date | None] = mapped_column(Date)
    description: Mapped[str] = mapped_column(String(200), default="")
    series_count: Mapped[int] = mapped_column(Integer, default=0)
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    # While PENDING, the upload touches this every few seconds; the sweep only claims uploads
    # that have been silent for a long time (a crashed process).
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    ready_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    files_deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime())

    series: Mapped[list[Series]] = relationship(
        back_populates="study",
        order_by="Series.series_number, Series.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    @property
    def is_visible(self) -> bool:
        """Listed and viewable: every file stored and not deleted."""
        return self.status == StudyStatus.READY

    def __repr__(self) -> str:
        return f"<Study {self.id} user={self.user_id} {self.status.value}>"


class Series(db.Model):  # type: ignore[name-defined,misc]
    __tablename__ = "study_series"

    id: Mapped[int] = mapped_column(primary_key=True)
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    series_instance_uid: Mapped[str] = mapped_column(String(64))
    modality: Mapped[str] = mapped_column(String(16), default="")
    series_number: Mapped[int | None] = mapped_column(Integer)
    description: Mapped[str] = mapped_column(String(200), default="")
    image_count: Mapped[int] = mapped_column(Integer, default=0)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)

    study: Mapped[Study] = relationship(back_populates="series")
    instances: Mapped[list[Instance]] = relationship(
        back_populates="series",
        order_by="Instance.instance_number, Instance.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class Instance(db.Model):  # type: ignore[name-defined,misc]
    """One stored DICOM file (an image, or a multi-frame image, or a non-image object)."""

    __tablename__ = "study_instances"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int] = mapped_column(ForeignKey("study_series.id", ondelete="CASCADE"), index=True)
    # Kept here too so a study's files are read (viewer, export, purge) without joining series.
    study_id: Mapped[int] = mapped_column(ForeignKey("studies.id", ondelete="CASCADE"), index=True)
    sop_instance_uid: Mapped[str] = mapped_column(String(64))
    instance_number: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    # Where the store keeps the file: a relative path (local disk) or Orthanc's instance id.
    # Empty until the file is stored.
    storage_ref: Mapped[str] = mapped_column(String(255), default="")

    series: Mapped[Series] = relationship(back_populates="instances")
