"""SQLAlchemy models, one module per aggregate. Importing this package registers them all."""

from dicomportal.models.annotation import Annotation, AnnotationKind
from dicomportal.models.billing import (
    IN_FLIGHT,
    BillingReason,
    Invoice,
    InvoiceLine,
    InvoiceNumberSeries,
    InvoiceStatus,
    LineKind,
    Payment,
    PaymentMethod,
    PaymentStatus,
    StripeEvent,
    Subscription,
    SubscriptionStatus,
)
from dicomportal.models.catalog import AddOn, CatalogRevision, Interval, OverageRate, Plan, Price
from dicomportal.models.credit import CreditNote, CreditNoteStatus
from dicomportal.models.disputes import OPEN_DISPUTE_STATUSES, Dispute, DisputeStatus, EarlyFraudWarning
from dicomportal.models.documents import StoredDocument
from dicomportal.models.ops import AuditLog, EmailOutbox, Installation, JobItemFailure, ScheduledRun
from dicomportal.models.studies import Instance, Series, Study, StudyStatus
from dicomportal.models.studies_plus import (
    CreditEntry,
    CreditKind,
    OverageAllowance,
    ShareLink,
    SubscriptionAddOn,
)
from dicomportal.models.user import BillingProfile, LoginSession, Role, User

__all__ = [
    "IN_FLIGHT",
    "OPEN_DISPUTE_STATUSES",
    "AddOn",
    "Annotation",
    "AnnotationKind",
    "AuditLog",
    "BillingProfile",
    "BillingReason",
    "CatalogRevision",
    "CreditEntry",
    "CreditKind",
    "CreditNote",
    "CreditNoteStatus",
    "Dispute",
    "DisputeStatus",
    "EarlyFraudWarning",
    "EmailOutbox",
    "Installation",
    "Instance",
    "Interval",
    "Invoice",
    "InvoiceLine",
    "InvoiceNumberSeries",
    "InvoiceStatus",
    "JobItemFailure",
    "LineKind",
    "LoginSession",
    "OverageAllowance",
    "OverageRate",
    "Payment",
    "PaymentMethod",
    "PaymentStatus",
    "Plan",
    "Price",
    "Role",
    "ScheduledRun",
    "Series",
    "ShareLink",
    "StoredDocument",
    "StripeEvent",
    "Study",
    "StudyStatus",
    "Subscription",
    "SubscriptionAddOn",
    "SubscriptionStatus",
    "User",
]
