"""The studies domain's errors; views turn each into a message and a status."""

from __future__ import annotations


class StudiesError(Exception):
    """Base class: the message is for the customer."""


class UploadRefused(StudiesError):
    """The upload breaks a rule (a file that is not DICOM, a zip bomb, over quota, uploads
    paused...). Nothing was stored."""


class UploadFailed(StudiesError):
    """The storage failed while the upload was being stored. Whatever was stored was removed
    (or will be, by the sweep); nothing of it is visible."""


class StudyNotFound(StudiesError):
    """No such study, series or image among the customer's (another account's is not found either)."""


class StudiesUnavailable(StudiesError):
    """The customer has no subscription that grants access to their studies."""
