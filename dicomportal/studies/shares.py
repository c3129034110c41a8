"""Share links: a study shared read-only by a link with an expiry, revocable, every opening counted.

A link opens only while it is neither revoked nor expired, its study is stored and listed (not
deleted, not purged) and its owner still has access to their studies (an ended subscription closes
every link; a paused one keeps them open, as viewing stays allowed while paused).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select, update

from dicomportal import clock
from dicomportal.billing.entitlements import entitlements_for
from dicomportal.extensions import db
from dicomportal.models import ShareLink, Study, StudyStatus
from dicomportal.studies import tools
from dicomportal.studies.errors import StudiesError, StudyNotFound
from dicomportal.studies.library import get_study


class ShareRefused(StudiesError):
    """The link cannot be made as asked (a bad expiry, or the plan has no sharing). Nothing changed."""


@dataclass(frozen=True)
class OpenShare:
    """A link that opens now, with its study."""

    share: ShareLink
    study: Study


def create_share(user_id: int, study_id: int, days: int | None, max_days: int) -> ShareLink:
    """A new read-only link to one of the customer's studies, expiring in ``days`` days (None: the
    form's field was not a number).

    :raises StudyNotFound: not their study. :raises ShareRefused: ``days`` out of 1..``max_days``.
    """
    study = get_study(user_id, study_id)
    if tools.SHARE.code not in entitlements_for(user_id).tools:
        raise ShareRefused("Your plan does not include sharing by link.")
    if days is None:
        raise ShareRefused(f"Enter how many days the link should work, from 1 to {max_days}.")
    if not 1 <= days <= max_days:
        raise ShareRefused(f"A link can last from 1 to {max_days} days; you asked for {days}.")
    now = clock.now()
    share = ShareLink(
        study_id=study.id,
        user_id=user_id,
        token=secrets.token_urlsafe(24),
        created_at=now,
        expires_at=now + timedelta(days=days),
    )
    db.session.add(share)
    db.session.commit()
    return share


def shares_of(user_id: int, study_id: int) -> list[ShareLink]:
    """The links of one of the customer's studies, newest first (revoked and expired ones too).

    :raises StudyNotFound:
    """
    get_study(user_id, study_id)
    query = (
        select(ShareLink)
        .where(ShareLink.study_id == study_id, ShareLink.user_id == user_id)
        .order_by(ShareLink.created_at.desc(), ShareLink.id.desc())
    )
    return list(db.session.scalars(query))


def revoke_share(user_id: int, study_id: int, share_id: int) -> ShareLink:
    """Stop a link at once (revoking twice is no error).

    :raises StudyNotFound: not a link of this study of the customer's (another account's id is not
        found either).
    """
    share: ShareLink | None = db.session.scalar(
        select(ShareLink).where(
            ShareLink.id == share_id, ShareLink.user_id == user_id, ShareLink.study_id == study_id
        )
    )
    if share is None:
        raise StudyNotFound("We could not find that link.")
    get_study(user_id, share.study_id)
    if share.revoked_at is None:
        share.revoked_at = clock.now()
        db.session.commit()
    return share


def open_share(token: str) -> OpenShare:
    """The study behind a link that opens now (no account needed).

    :raises StudyNotFound: unknown, revoked or expired link, deleted study, or owner without access.
    """
    share = db.session.scalar(select(ShareLink).where(ShareLink.token == token)) if token else None
    if share is None or not share.is_open_at(clock.now()):
        raise StudyNotFound("This link does not open: it has expired or was revoked.")
    study = db.session.get(Study, share.study_id)
    if study is None or study.status != StudyStatus.READY or not entitlements_for(share.user_id).can_view:
        raise StudyNotFound("This link does not open: the study is no longer shared.")
    return OpenShare(share, study)


def count_opening(share_id: int) -> None:
    """One more opening of the link (one UPDATE, so openings at the same time all count)."""
    db.session.execute(
        update(ShareLink)
        .where(ShareLink.id == share_id)
        .values(open_count=ShareLink.open_count + 1, last_opened_at=clock.now())
        .execution_options(synchronize_session=False)
    )
    db.session.commit()


def delete_shares_of_user(user_id: int) -> int:
    """Delete every link of the customer (the purge); returns how many were deleted."""
    result = db.session.execute(delete(ShareLink).where(ShareLink.user_id == user_id))
    db.session.commit()
    return int(result.rowcount)  # type: ignore[attr-defined]
