"""A customer's study library: list, open, delete, purge. Every query is scoped to the customer
(another account's study, series or image is :class:`StudyNotFound`, a 404), and every function
taking a ``user_id`` asks the entitlements first (no live subscription: :class:`StudiesUnavailable`).

The public API the rest of the portal plugs into:

- the viewer: :func:`get_study`, :func:`get_series`, :func:`get_instance`, :func:`read_instance`,
  :func:`open_study_files` (customer), :func:`study_files` (already authorized, e.g. a share link);
- share links / credits: :func:`get_study` for the ownership check, ``Study.is_visible``;
- the subscription's purge hook: :func:`purge_user_data`;
- the dashboard: :func:`dicomportal.studies.quota.storage_meter`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import dataclass

from flask import current_app
from sqlalchemy import ColumnElement, and_, func, select, update

from dicomportal import clock
from dicomportal.billing.entitlements import Entitlements, entitlements_for
from dicomportal.extensions import db
from dicomportal.models import Instance, Series, Study, StudyStatus
from dicomportal.studies.backends import open_store
from dicomportal.studies.errors import StudiesUnavailable, StudyNotFound
from dicomportal.studies.ingest import delete_rows
from dicomportal.studies.quota import StorageMeter, storage_meter
from dicomportal.studies.store import StoreError, StudyLocation, StudyStore

log = logging.getLogger(__name__)


def store_of(study: Study) -> StudyStore:
    """The store the study's files are in (the one it was uploaded to)."""
    return open_store(current_app.config, study.storage_backend)


def location_of(study: Study) -> StudyLocation:
    """Where the study's files are in its store."""
    return StudyLocation(study.user_id, study.study_instance_uid)


def require_access(user_id: int) -> Entitlements:
    """The customer's entitlements if they may see their studies.

    :raises StudiesUnavailable: no subscription, or it has ended (or never started).
    """
    entitlements = entitlements_for(user_id)
    if not entitlements.can_view:
        raise StudiesUnavailable(
            "Your studies are available while you have a subscription. Choose a plan to see them again."
        )
    return entitlements


PAGE_SIZE = 100


@dataclass(frozen=True)
class Library:
    """The studies page: one page of the customer's visible studies, the storage meter, whether
    uploads are on (off only while the subscription is paused: without one there is no page)."""

    studies: list[Study]
    meter: StorageMeter
    can_upload: bool
    page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))


def library(user_id: int, page: int = 1) -> Library:
    """The customer's studies, newest first, ``PAGE_SIZE`` a page, with the meter. A page past the
    last shows the last one.

    :raises StudiesUnavailable: no access.
    """
    entitlements = require_access(user_id)
    total = db.session.scalar(select(func.count()).select_from(Study).where(_visible_of(user_id))) or 0
    page = min(max(1, page), max(1, -(-total // PAGE_SIZE)))
    return Library(
        studies=list_studies(user_id, offset=(page - 1) * PAGE_SIZE, limit=PAGE_SIZE),
        meter=storage_meter(user_id, entitlements),
        can_upload=entitlements.can_upload,
        page=page,
        total=total,
    )


def _visible_of(user_id: int) -> ColumnElement[bool]:
    return and_(Study.user_id == user_id, Study.status == StudyStatus.READY)


def list_studies(user_id: int, offset: int = 0, limit: int | None = None) -> list[Study]:
    """The customer's visible studies, newest upload first (no access check: callers have done it)."""
    query = (
        select(Study)
        .where(_visible_of(user_id))
        .order_by(Study.created_at.desc(), Study.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return list(db.session.scalars(query))


def get_study(user_id: int, study_id: int) -> Study:
    """One of the customer's visible studies.

    :raises StudyNotFound: not theirs, not ready, or deleted. :raises StudiesUnavailable: no access.
    """
    require_access(user_id)
    study: Study | None = db.session.scalar(
        select(Study).where(Study.id == study_id, Study.user_id == user_id, Study.status == StudyStatus.READY)
    )
    if study is None:
        raise StudyNotFound("We could not find that study.")
    return study


def get_series(user_id: int, series_id: int) -> Series:
    """One series of one of the customer's visible studies. :raises StudyNotFound:"""
    require_access(user_id)
    series: Series | None = db.session.scalar(
        select(Series)
        .join(Study, Series.study_id == Study.id)
        .where(Series.id == series_id, Study.user_id == user_id, Study.status == StudyStatus.READY)
    )
    if series is None:
        raise StudyNotFound("We could not find that series.")
    return series


def get_instance(user_id: int, instance_id: int) -> Instance:
    """One image of one of the customer's visible studies. :raises StudyNotFound:"""
    require_access(user_id)
    instance: Instance | None = db.session.scalar(
        select(Instance)
        .join(Study, Instance.study_id == Study.id)
        .where(Instance.id == instance_id, Study.user_id == user_id, Study.status == StudyStatus.READY)
    )
    if instance is None:
        raise StudyNotFound("We could not find that image.")
    return instance


def read_instance(user_id: int, instance_id: int) -> bytes:
    """The DICOM file of one of the customer's images. :raises StudyNotFound: :raises StoreError:"""
    instance = get_instance(user_id, instance_id)
    study = db.session.get(Study, instance.study_id)
    assert study is not None
    return store_of(study).get(instance.storage_ref)


def open_study_files(user_id: int, study_id: int) -> Iterator[tuple[Instance, bytes]]:
    """Every file of one of the customer's studies, series by series, in instance-number order.

    :raises StudyNotFound: (at once, before the first file). :raises StoreError: while reading.
    """
    return study_files(get_study(user_id, study_id))


def study_files(study: Study) -> Iterator[tuple[Instance, bytes]]:
    """Every file of a study the caller has already authorized (e.g. through a share link)."""
    instances = list(
        db.session.scalars(
            select(Instance)
            .join(Series, Instance.series_id == Series.id)
            .where(Instance.study_id == study.id)
            .order_by(Series.series_number, Series.id, Instance.instance_number, Instance.id)
        )
    )
    store = store_of(study)

    def read() -> Iterator[tuple[Instance, bytes]]:
        for instance in instances:
            yield instance, store.get(instance.storage_ref)

    return read()


def delete_study(user_id: int, study_id: int) -> Study:
    """Delete one of the customer's studies: gone from the list and the meter at once, its files
    deleted now (or by the sweep if the store is down), a tombstone row kept.

    :raises StudyNotFound: :raises StudiesUnavailable:
    """
    study = get_study(user_id, study_id)
    now = clock.now()
    study.status = StudyStatus.DELETED
    study.deleted_at = now
    study.updated_at = now
    db.session.commit()
    try:
        remove_deleted_study_files(study)
    except StoreError:
        db.session.rollback()
        log.warning("study %s deleted; its files will be removed by the sweep", study.id, exc_info=True)
    return study


def remove_deleted_study_files(study: Study) -> int:
    """Delete a deleted study's files, then its series and image rows; the study row stays as a
    tombstone with ``files_deleted_at``. Returns how many files were deleted. :raises StoreError:"""
    count = store_of(study).delete(location_of(study))
    delete_rows(study.id, keep_study=True)
    study.files_deleted_at = clock.now()
    db.session.commit()
    return count


@dataclass(frozen=True)
class PurgeCounts:
    """What :func:`purge_user_data` deleted, for the audit log."""

    studies: int  # studies whose files are now gone
    files: int  # files deleted from the store
    bytes: int  # the size of those studies as recorded
    left_for_sweep: int  # studies whose files the store could not delete now; the sweep retries


def purge_user_data(user_id: int) -> PurgeCounts:
    """Delete every study of the customer, files first (the subscription's purge hook, after the
    restore window). No entitlement check: the caller decides. Uploads in progress are failed
    so they clean themselves up. Safe to run twice."""
    now = clock.now()
    db.session.execute(
        update(Study)
        .where(Study.user_id == user_id, Study.status.in_((StudyStatus.READY, StudyStatus.PENDING)))
        .values(status=StudyStatus.DELETED, deleted_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    studies = list(
        db.session.scalars(
            select(Study).where(
                Study.user_id == user_id,
                Study.status.in_((StudyStatus.DELETED, StudyStatus.FAILED)),
                Study.files_deleted_at.is_(None),
            )
        )
    )
    done = files = size = left = 0
    for study in studies:
        try:
            files += remove_deleted_study_files(study)
        except StoreError:
            db.session.rollback()
            left += 1
            continue
        done += 1
        size += study.size_bytes
    return PurgeCounts(studies=done, files=files, bytes=size, left_for_sweep=left)
