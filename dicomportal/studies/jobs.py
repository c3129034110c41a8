"""The study-storage sweep: finishes what a crash or an unreachable store left undone.

- ``pending`` uploads silent for ``STALE_AFTER`` (their process died) become ``failed``;
- ``failed`` uploads: files deleted, then rows;
- ``deleted`` studies whose files are still there: files deleted, then series/image rows.

Each study is handled in its own transaction under a row lock taken with SKIP LOCKED, so several
workers can sweep at once; every step is idempotent, so a study handled twice is no harm. A store
that cannot delete now (Orthanc down) leaves the study for the next pass, counted as ``deferred``.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Callable

from sqlalchemy import ColumnElement, and_, select, update

from dicomportal import clock, jobs
from dicomportal.billing import addons, extras, retention
from dicomportal.extensions import db
from dicomportal.models import Study, StudyStatus
from dicomportal.studies import credits, shares
from dicomportal.studies.annotations import delete_annotations_of_user
from dicomportal.studies.ingest import STALE_AFTER, remove_failed_study
from dicomportal.studies.library import purge_user_data, remove_deleted_study_files, store_of
from dicomportal.studies.store import StoreError

log = logging.getLogger(__name__)
BATCH = 100


@jobs.job("sweep_study_storage", order=60)
def sweep_study_storage() -> Counter[str]:
    """One pass of the sweep; a count per outcome: ``given_up`` (silent uploads marked failed),
    ``upload_removed``, ``deleted_files_removed``, ``deferred`` (the store could not delete yet)."""
    outcomes: Counter[str] = Counter(given_up=_give_up_stale_uploads())
    failed = Study.status == StudyStatus.FAILED
    deleted_with_files = and_(Study.status == StudyStatus.DELETED, Study.files_deleted_at.is_(None))
    outcomes += _each(failed, lambda study: remove_failed_study(store_of(study), study), "upload_removed")
    outcomes += _each(deleted_with_files, remove_deleted_study_files, "deleted_files_removed")
    return outcomes


def _give_up_stale_uploads() -> int:
    given_up = db.session.execute(
        update(Study)
        .where(Study.status == StudyStatus.PENDING, Study.updated_at < clock.now() - STALE_AFTER)
        .values(status=StudyStatus.FAILED, updated_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()
    return int(given_up.rowcount)  # type: ignore[attr-defined]


def _each(condition: ColumnElement[bool], clean: Callable[[Study], object], done: str) -> Counter[str]:
    outcomes: Counter[str] = Counter()
    for study_id in db.session.scalars(select(Study.id).where(condition).limit(BATCH)).all():
        study = db.session.scalar(
            select(Study).where(Study.id == study_id, condition).with_for_update(skip_locked=True)
        )
        if study is None:  # another worker has it, or has finished it
            db.session.rollback()
            continue
        try:
            clean(study)
        except StoreError:
            db.session.rollback()
            log.warning("sweep: the files of study %s could not be deleted yet", study_id, exc_info=True)
            outcomes["deferred"] += 1
            continue
        outcomes[done] += 1
    return outcomes


def purge_studies(user_id: int) -> dict[str, int]:
    """The studies domain's purger (billing calls it after the restore window): every study's files
    on local disk or in Orthanc, then the share links and the measurements and notes kept in the
    viewer. Idempotent; raises only if it could not finish (files the store could not delete now),
    so billing retries the purge."""
    counts = purge_user_data(user_id)
    links = shares.delete_shares_of_user(user_id)
    notes = delete_annotations_of_user(user_id)
    if counts.left_for_sweep:
        raise StoreError(f"{counts.left_for_sweep} studies of customer {user_id} could not be deleted yet")
    return {
        "studies": counts.studies,
        "files": counts.files,
        "bytes": counts.bytes,
        "share_links": links,
        "viewer_notes": notes,
    }


# The studies domain's seams into billing: the purge after the restore window, and the renewal
# invoice's lines for extra credits used and for add-ons in force.
retention.register_purger("studies", purge_studies)
extras.register_line_source("processing-credits", credits.overage_lines)
extras.register_line_source("storage-add-ons", addons.renewal_lines)
