"""Storage used against the quota. The quota is read through :func:`storage_quota_bytes` only
(plan quota + extra-storage add-ons in force), so every check and meter follows an add-on at once."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import func, select

from dicomportal.billing import addons
from dicomportal.billing.entitlements import Entitlements, entitlements_for
from dicomportal.extensions import db
from dicomportal.models import Study, StudyStatus, SubscriptionAddOn

_UNITS = ((1024**4, "TB"), (1024**3, "GB"), (1024**2, "MB"), (1024, "KB"))


def storage_quota_bytes(user_id: int, entitlements: Entitlements | None = None) -> int:
    """How many bytes of studies the customer may keep: the plan's quota plus the extra storage of
    the add-ons in force (none without access)."""
    granted = entitlements if entitlements is not None else entitlements_for(user_id)
    if granted.storage_quota_bytes <= 0:
        return 0
    return granted.storage_quota_bytes + addons.extra_storage_bytes(user_id)


def remove_storage_addon(user_id: int, code: str) -> SubscriptionAddOn:
    """Remove an extra-storage add-on at period end, refused while what is stored (and being
    uploaded) would not fit the quota without it.

    :raises AddOnRefused: with the numbers.
    """
    stored = storage_committed_bytes(user_id)
    addon_bytes = sum(
        offer.addon.storage_gb * addons.GB for offer in addons.offers(user_id) if offer.addon.code == code
    )
    quota_without = storage_quota_bytes(user_id) - addon_bytes
    return addons.remove_addon(user_id, code, stored, quota_without)


def storage_used_bytes(user_id: int) -> int:
    """Bytes of the customer's studies that are stored and listed (what the meter shows)."""
    return _sum_sizes(user_id, (StudyStatus.READY,))


def storage_committed_bytes(user_id: int) -> int:
    """Stored plus being uploaded right now: what a new upload is checked against, so two uploads
    at once cannot both fit into the same free space."""
    return _sum_sizes(user_id, (StudyStatus.READY, StudyStatus.PENDING))


def _sum_sizes(user_id: int, statuses: tuple[StudyStatus, ...]) -> int:
    total = db.session.scalar(
        select(func.coalesce(func.sum(Study.size_bytes), 0)).where(
            Study.user_id == user_id, Study.status.in_(statuses)
        )
    )
    return int(total or 0)


@dataclass(frozen=True)
class StorageMeter:
    """What the storage meter shows."""

    used_bytes: int
    quota_bytes: int

    @property
    def left_bytes(self) -> int:
        return max(0, self.quota_bytes - self.used_bytes)

    @property
    def percent(self) -> int:
        """0-100, rounded up so any use shows, and 100 only when full."""
        if self.quota_bytes <= 0:
            return 100 if self.used_bytes else 0
        share = -(-self.used_bytes * 100 // self.quota_bytes)
        return min(100, share if self.used_bytes < self.quota_bytes else 100)

    @property
    def is_full(self) -> bool:
        return self.used_bytes >= self.quota_bytes


def storage_meter(user_id: int, entitlements: Entitlements | None = None) -> StorageMeter:
    """Used and quota for the customer's meter."""
    return StorageMeter(storage_used_bytes(user_id), storage_quota_bytes(user_id, entitlements))


def format_bytes(size: int) -> str:
    """``5 GB``, ``1.2 GB``, ``819.2 MB``, ``512 bytes`` (binary units, as the plans' GB are)."""
    for unit, label in _UNITS:
        if size >= unit:
            value = size / unit
            text = f"{value:.1f}".removesuffix(".0") if value < 100 else f"{value:,.0f}"
            return f"{text} {label}"
    return "1 byte" if size == 1 else f"{size} bytes"
