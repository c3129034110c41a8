"""SQLAlchemy models, one module per aggregate. Importing this package registers them all."""

from dicomportal.models.catalog import AddOn, Interval, OverageRate, Plan, Price
from dicomportal.models.ops import AuditLog, EmailOutbox
from dicomportal.models.user import BillingProfile, Role, User

__all__ = [
    "AddOn",
    "AuditLog",
    "BillingProfile",
    "EmailOutbox",
    "Interval",
    "OverageRate",
    "Plan",
    "Price",
    "Role",
    "User",
]
