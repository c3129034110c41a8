"""Study files in Orthanc, the open-source DICOM server, through its REST API.

Orthanc names every resource by a hash of its DICOM UIDs and keeps one copy per SOP Instance
UID: a second POST of the same instance answers ``AlreadyStored`` and keeps the first file.
Shared naively between customers that would mean (a) customer B's upload of a file customer A
already stored is silently A's bytes, (b) B deleting "their" study deletes A's, and (c) an
upload's answer tells B whether anyone else holds a study with that UID. The portal avoids all
three by rewriting the Study, Series and SOP Instance UIDs (and the UIDs that refer to them) of
every upload to fresh ones before anything is stored (studies/files.py, ``UidRewriter``): no two
portal studies, of the same customer or of two customers, ever share a UID, so each portal
study is exactly one Orthanc study, and ``DELETE /studies/{id}`` on it touches nothing else,
not even the other studies of an Orthanc that a hospital also uses for its own work.
Reference counting was the alternative; it keeps the files byte-identical but leaves all three
problems to be solved by comparing contents, and a shared Orthanc study would still mix
customers' instances.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import requests

from dicomportal.studies.store import ORTHANC, StoreError, StudyLocation

_ORTHANC_ID = re.compile(r"^[0-9a-f]{8}(-[0-9a-f]{8}){4}$")


class OrthancStore:
    """The :class:`~dicomportal.studies.store.StudyStore` interface over Orthanc's REST API."""

    backend = ORTHANC

    def __init__(
        self,
        url: str,
        username: str | None = None,
        password: str | None = None,
        timeout: float = 60.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = (min(timeout, 10.0), timeout)  # (connect, read)
        self.session = requests.Session()
        if username:
            self.session.auth = (username, password or "")

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        try:
            response = self.session.request(method, self.url + path, timeout=self.timeout, **kwargs)
        except requests.RequestException as exc:
            raise StoreError(f"Orthanc at {self.url} is not reachable ({type(exc).__name__})") from exc
        if response.status_code == 401:
            raise StoreError("Orthanc refused the portal's credentials (ORTHANC_USERNAME/PASSWORD)")
        return response

    def _json(self, response: requests.Response, what: str) -> Any:
        if not response.ok:
            raise StoreError(f"Orthanc could not {what}: HTTP {response.status_code} {_details(response)}")
        return response.json()

    def put(self, where: StudyLocation, name: str, data: bytes) -> str:
        """POST /instances; the ref is Orthanc's instance id."""
        response = self._call("POST", "/instances", data=data, headers={"Content-Type": "application/dicom"})
        answer = self._json(response, "store a file")
        if answer.get("Status") not in ("Success", "AlreadyStored"):
            raise StoreError(f"Orthanc did not store a file: {answer.get('Status')}")
        instance_id = str(answer["ID"])
        _check_id(instance_id)
        return instance_id

    def get(self, ref: str) -> bytes:
        """GET /instances/{id}/file: the DICOM file as stored."""
        _check_id(ref)
        response = self._call("GET", f"/instances/{ref}/file")
        if not response.ok:
            raise StoreError(f"Orthanc could not return a file: HTTP {response.status_code}")
        return response.content

    def study_ids(self, where: StudyLocation) -> list[str]:
        """Orthanc's ids for the study UID (more than one only if its files disagree on PatientID)."""
        response = self._call("POST", "/tools/lookup", data=where.study_uid)
        found = self._json(response, "look up a study")
        ids = [str(item["ID"]) for item in found if item.get("Type") == "Study"]
        for study_id in ids:
            _check_id(study_id)
        return ids

    def list(self, where: StudyLocation) -> list[str]:
        """Instance ids of the study."""
        refs: list[str] = []
        for study_id in self.study_ids(where):
            response = self._call("GET", f"/studies/{study_id}/instances")
            refs.extend(str(item["ID"]) for item in self._json(response, "list a study"))
        return sorted(refs)

    def delete(self, where: StudyLocation) -> int:
        """DELETE /studies/{id} for the study UID; a study Orthanc does not have counts 0."""
        deleted = 0
        for study_id in self.study_ids(where):
            count = len(self._instances_of(study_id))
            response = self._call("DELETE", f"/studies/{study_id}")
            if response.status_code == 404:
                continue  # deleted meanwhile (the sweep and the customer at once): the same outcome
            self._json(response, "delete a study")
            deleted += count
        return deleted

    def _instances_of(self, study_id: str) -> Sequence[Any]:
        response = self._call("GET", f"/studies/{study_id}/instances")
        if response.status_code == 404:
            return []
        result: Sequence[Any] = self._json(response, "list a study")
        return result

    def size(self, where: StudyLocation) -> int:
        """``DicomDiskSize`` from /studies/{id}/statistics: the DICOM files' bytes on Orthanc's disk."""
        total = 0
        for study_id in self.study_ids(where):
            response = self._call("GET", f"/studies/{study_id}/statistics")
            total += int(self._json(response, "measure a study")["DicomDiskSize"])
        return total


def _check_id(value: str) -> None:
    if not _ORTHANC_ID.match(value):
        raise StoreError(f"not an Orthanc id: {value!r}")


def _details(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        return response.text[:200]
    if isinstance(body, dict):
        return str(body.get("Details") or body.get("Message") or "")
    return ""
