"""Upload -> studies, all or nothing.

1. **Check** every file (studies/unpack.py, studies/files.py) with nothing written anywhere: the
   rewritten files go to an anonymous temporary file (unlinked at creation, so even a killed
   process leaves nothing behind). Any bad file refuses the whole upload, naming the file.
2. **Reserve**: under a lock on the customer's row, check the quota against what is stored plus
   other uploads in progress, and commit the Study/Series/Instance rows as ``pending``:
   invisible to the customer, but recorded *before* any file is stored, so every stored file
   belongs to a row that says where it is.
3. **Store** the files (``updated_at`` is touched every few seconds while this runs).
4. **Commit**: one transaction records where each file is and turns the studies ``ready``
   (compare-and-set from ``pending``): they appear together or not at all.

Any failure in 3 or 4 marks the studies ``failed``, deletes their files and then their rows. A
crash at any line leaves at most ``pending``/``failed`` rows that nobody sees and whose files are
found by their study UID: :func:`dicomportal.studies.jobs.sweep_study_storage` deletes the files
then the rows of ``failed`` studies, and of ``pending`` ones silent for ``STALE_AFTER``.
"""

from __future__ import annotations

import logging
import secrets
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import IO

from flask import current_app
from sqlalchemy import delete, select, update

from dicomportal import clock
from dicomportal.billing.entitlements import Entitlements, entitlements_for
from dicomportal.extensions import db
from dicomportal.models import Instance, Series, Study, StudyStatus, SubscriptionStatus, User
from dicomportal.studies.backends import open_store
from dicomportal.studies.errors import UploadFailed, UploadRefused
from dicomportal.studies.files import DicomFile, FileRefused, UidRewriter, read_dicom
from dicomportal.studies.quota import format_bytes, storage_committed_bytes, storage_quota_bytes
from dicomportal.studies.store import StoreError, StudyLocation, StudyStore
from dicomportal.studies.unpack import Entry, UploadLimits, UploadPart, plan_entries

log = logging.getLogger(__name__)

STALE_AFTER = timedelta(minutes=30)  # a pending upload silent this long is a crashed one
HEARTBEAT_SECONDS = 10.0
MAX_PROBLEMS_LISTED = 10


@dataclass
class CheckedFile:
    """A checked file's metadata, and where its rewritten bytes are in the upload's spool."""

    meta: DicomFile
    offset: int
    length: int


@dataclass
class StudyPlan:
    """One study of the upload, its series and files, before anything is stored."""

    study_uid: str
    series: dict[str, list[CheckedFile]] = field(default_factory=dict)

    @property
    def files(self) -> list[CheckedFile]:
        return [f for files in self.series.values() for f in files]

    @property
    def size_bytes(self) -> int:
        return sum(f.length for f in self.files)


@dataclass(frozen=True)
class UploadResult:
    """What the customer is told after a successful upload."""

    study_ids: list[int]
    image_count: int
    size_bytes: int
    skipped: list[str]
    duplicates: int


def ingest_upload(user_id: int, parts: Sequence[UploadPart]) -> UploadResult:
    """Check, reserve, store and commit the upload (module docstring), for the customer ``user_id``.

    :raises UploadRefused: uploads not allowed, a bad file or zip, or over quota; nothing stored.
    :raises UploadFailed: the storage failed midway; what was stored has been removed.
    """
    config = current_app.config
    entitlements = entitlements_for(user_id)
    _check_may_upload(entitlements)
    entries, skipped = plan_entries(parts, UploadLimits.from_config(config))
    with tempfile.TemporaryFile() as spool:
        checked, duplicates, dicomdirs = check_files(entries, UidRewriter(secrets.token_bytes(16)), spool)
        plans = group_into_studies(checked)
        store = open_store(config)
        study_ids = reserve(user_id, plans, store.backend, entitlements)
        try:
            refs = store_files(store, user_id, study_ids, plans, spool)
            mark_ready(study_ids, refs)
        except BaseException as exc:
            abandon(store, user_id, study_ids, plans)
            if isinstance(exc, StoreError):
                raise UploadFailed(
                    f"The study storage failed while saving your upload ({exc}). Nothing was kept; "
                    "please try again."
                ) from exc
            raise
    return UploadResult(
        study_ids=study_ids,
        image_count=len(checked),
        size_bytes=sum(p.size_bytes for p in plans),
        skipped=skipped + dicomdirs,
        duplicates=duplicates,
    )


def _check_may_upload(entitlements: Entitlements) -> None:
    if entitlements.can_upload:
        return
    if entitlements.status == SubscriptionStatus.PAUSED:
        raise UploadRefused(
            "Your subscription is paused: your studies stay viewable, but uploads are off until it resumes."
        )
    raise UploadRefused("Uploading studies needs an active subscription. Choose a plan to start.")


def check_files(
    entries: Iterable[Entry], rewriter: UidRewriter, spool: IO[bytes]
) -> tuple[list[CheckedFile], int, list[str]]:
    """Read and check every entry; write the rewritten files to ``spool``.

    Returns the files, how many were duplicates within the upload (same SOP Instance UID; the
    first is kept) and the DICOMDIR indexes skipped.
    :raises UploadRefused: listing up to ten refused files, each named.
    """
    checked: dict[str, CheckedFile] = {}
    problems: list[str] = []
    duplicates = 0
    dicomdirs: list[str] = []
    for entry in entries:
        try:
            meta = read_dicom(entry.name, entry.read(), rewriter)
        except FileRefused as exc:
            problems.append(str(exc))
            if len(problems) >= MAX_PROBLEMS_LISTED:
                break
            continue
        if meta is None:
            dicomdirs.append(entry.name)
        elif meta.sop_uid in checked:
            duplicates += 1
        elif not problems:  # once a file is refused, only look for more problems
            offset = spool.tell()
            spool.write(meta.data)
            # Only the spool keeps the bytes: an upload of gigabytes never sits in memory.
            checked[meta.sop_uid] = CheckedFile(replace(meta, data=b""), offset, len(meta.data))
    if problems:
        raise UploadRefused(_problems_message(problems))
    if not checked:
        raise UploadRefused("This upload holds no DICOM images (only a DICOMDIR index). Nothing was stored.")
    return list(checked.values()), duplicates, dicomdirs


def _problems_message(problems: list[str]) -> str:
    if len(problems) == 1:
        return f"{problems[0]} Nothing was stored."
    more = " (and perhaps more)" if len(problems) >= MAX_PROBLEMS_LISTED else ""
    return f"{len(problems)} files were refused{more}: " + " ".join(problems) + " Nothing was stored."


def group_into_studies(files: Iterable[CheckedFile]) -> list[StudyPlan]:
    """Files grouped by study, then series, in upload order."""
    plans: dict[str, StudyPlan] = {}
    for file in files:
        plan = plans.setdefault(file.meta.study_uid, StudyPlan(file.meta.study_uid))
        plan.series.setdefault(file.meta.series_uid, []).append(file)
    return list(plans.values())


def reserve(user_id: int, plans: list[StudyPlan], backend: str, entitlements: Entitlements) -> list[int]:
    """Check the quota under a lock on the customer's row and commit the ``pending`` rows; return
    the new studies' ids, in the order of ``plans``.

    :raises UploadRefused: the upload would not fit, with the numbers.
    """
    lock_customer(user_id)
    upload = sum(p.size_bytes for p in plans)
    quota = storage_quota_bytes(user_id, entitlements)
    left = max(0, quota - storage_committed_bytes(user_id))
    if upload > left:
        db.session.rollback()
        raise UploadRefused(
            f"This upload is {format_bytes(upload)}; you have {format_bytes(left)} of "
            f"{format_bytes(quota)} left. Delete studies or add storage, then try again. Nothing was stored."
        )
    study_ids = [_study_rows(user_id, plan, backend) for plan in plans]
    db.session.commit()
    return study_ids


def lock_customer(user_id: int) -> None:
    """Hold the customer's row until the transaction ends, so a second upload's quota check waits
    for the first one's pending rows. PostgreSQL: a row lock that still lets other tables insert
    rows pointing at the customer. SQLite ignores FOR UPDATE and starts a transaction only at the
    first write, so there a no-op write on the row takes the database's write lock instead."""
    if db.session.get_bind().dialect.name == "postgresql":
        db.session.execute(select(User.id).where(User.id == user_id).with_for_update(key_share=True))
    else:
        db.session.execute(
            update(User)
            .where(User.id == user_id)
            .values(id=User.id)
            .execution_options(synchronize_session=False)
        )


def _study_rows(user_id: int, plan: StudyPlan, backend: str) -> int:
    files = plan.files
    first = next((f.meta for f in files if f.meta.study_description), files[0].meta)
    dated = next((f.meta.study_date for f in files if f.meta.study_date), None)
    study = Study(
        user_id=user_id,
        status=StudyStatus.PENDING,
        storage_backend=backend,
        study_instance_uid=plan.study_uid,
        modalities=", ".join(sorted({f.meta.modality for f in files if f.meta.modality}))[:64],
        study_date=dated,
        description=first.study_description,
        series_count=len(plan.series),
        image_count=len(files),
        size_bytes=plan.size_bytes,
    )
    db.session.add(study)
    db.session.flush()
    for series_uid, series_files in plan.series.items():
        head = series_files[0].meta
        series = Series(
            study_id=study.id,
            series_instance_uid=series_uid,
            modality=head.modality,
            series_number=head.series_number,
            description=head.series_description,
            image_count=len(series_files),
            size_bytes=sum(f.length for f in series_files),
        )
        db.session.add(series)
        db.session.flush()
        db.session.add_all(
            Instance(
                series_id=series.id,
                study_id=study.id,
                sop_instance_uid=f.meta.sop_uid,
                instance_number=f.meta.instance_number,
                size_bytes=f.length,
            )
            for f in series_files
        )
    study_id: int = study.id
    return study_id


def store_files(
    store: StudyStore, user_id: int, study_ids: list[int], plans: list[StudyPlan], spool: IO[bytes]
) -> dict[str, str]:
    """Put every file in the store; return each SOP Instance UID's storage ref."""
    refs: dict[str, str] = {}
    last_beat = time.monotonic()
    for plan in plans:
        where = StudyLocation(user_id, plan.study_uid)
        for file in plan.files:
            spool.seek(file.offset)
            refs[file.meta.sop_uid] = store.put(where, file.meta.sop_uid, spool.read(file.length))
            if time.monotonic() - last_beat > HEARTBEAT_SECONDS:
                _heartbeat(study_ids)
                last_beat = time.monotonic()
    return refs


def _heartbeat(study_ids: list[int]) -> None:
    db.session.execute(
        update(Study)
        .where(Study.id.in_(study_ids), Study.status == StudyStatus.PENDING)
        .values(updated_at=clock.now())
    )
    db.session.commit()


def mark_ready(study_ids: list[int], refs: dict[str, str]) -> None:
    """Record each file's ref and make the studies visible, in one transaction.

    :raises UploadFailed: the sweep gave the upload up meanwhile (it was silent too long).
    """
    now = clock.now()
    done = db.session.execute(
        update(Study)
        .where(Study.id.in_(study_ids), Study.status == StudyStatus.PENDING)
        .values(status=StudyStatus.READY, ready_at=now, updated_at=now)
        .execution_options(synchronize_session=False)
    )
    if done.rowcount != len(study_ids):  # type: ignore[attr-defined]
        db.session.rollback()
        raise UploadFailed(
            "Saving your upload took too long and was given up. Nothing was kept; please try again."
        )
    rows = db.session.execute(
        select(Instance.id, Instance.sop_instance_uid).where(Instance.study_id.in_(study_ids))
    ).all()
    db.session.execute(update(Instance), [{"id": i, "storage_ref": refs[uid]} for i, uid in rows])
    db.session.commit()


def abandon(store: StudyStore, user_id: int, study_ids: list[int], plans: list[StudyPlan]) -> None:
    """Undo an upload that did not finish: ``failed`` first (so the sweep finishes the job if this
    process dies), then the files (by study UID, even if a sweep already took the rows: a file
    stored after it would be left otherwise), then the rows. Never raises: the sweep retries."""
    try:
        db.session.rollback()
        db.session.execute(
            update(Study)
            .where(Study.id.in_(study_ids), Study.status == StudyStatus.PENDING)
            .values(status=StudyStatus.FAILED, updated_at=clock.now())
            .execution_options(synchronize_session=False)
        )
        db.session.commit()
        for plan in plans:
            store.delete(StudyLocation(user_id, plan.study_uid))
        failed = select(Study.id).where(Study.id.in_(study_ids), Study.status == StudyStatus.FAILED)
        for study_id in db.session.scalars(failed).all():
            delete_rows(study_id, keep_study=False)
        db.session.commit()
    except Exception:
        db.session.rollback()
        log.exception("could not clean up the upload of studies %s; the sweep will", study_ids)


def remove_failed_study(store: StudyStore, study: Study) -> None:
    """Delete a failed upload's files, then its rows (files first: a row always outlives its files).

    :raises StoreError: the files could not be deleted; the rows stay for the next sweep.
    """
    store.delete(StudyLocation(study.user_id, study.study_instance_uid))
    delete_rows(study.id, keep_study=False)
    db.session.commit()


def delete_rows(study_id: int, keep_study: bool) -> None:
    """Delete a study's instance and series rows (explicitly: SQLite does not enforce cascades),
    and the study row itself unless it stays as a tombstone."""
    db.session.execute(delete(Instance).where(Instance.study_id == study_id))
    db.session.execute(delete(Series).where(Series.study_id == study_id))
    if not keep_study:
        db.session.execute(delete(Study).where(Study.id == study_id))
