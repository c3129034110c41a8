"""A real Orthanc (Debian's ``orthanc`` and ``orthanc-dicomweb``) as a child process on a free
loopback port, for the tests and ``bench/studies.py``."""

from __future__ import annotations

import ctypes
import json
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from dicomportal.devtools.stripe_server import free_port

ORTHANC_BINARIES = ("/usr/sbin/Orthanc", "/usr/bin/Orthanc")
DICOMWEB_PLUGINS = ("/usr/share/orthanc/plugins/libOrthancDicomWeb.so",)
ORTHANC_USER, ORTHANC_PASSWORD = "portal", "orthanc-test-password"


class OrthancDidNotStart(Exception):
    """Orthanc exited or did not answer; the message has the end of its log."""


@dataclass
class OrthancServer:
    """An Orthanc child process on a free loopback port, with HTTP basic auth."""

    url: str
    process: subprocess.Popen[bytes]
    directory: Path

    def session(self) -> requests.Session:
        session = requests.Session()
        session.auth = (ORTHANC_USER, ORTHANC_PASSWORD)
        return session

    def instances(self) -> list[str]:
        """Every instance Orthanc holds, whoever stored it."""
        response = self.session().get(f"{self.url}/instances", timeout=10)
        response.raise_for_status()
        return sorted(response.json())

    def wipe(self) -> None:
        """Delete everything Orthanc holds."""
        session = self.session()
        for patient in session.get(f"{self.url}/patients", timeout=10).json():
            session.delete(f"{self.url}/patients/{patient}", timeout=10).raise_for_status()


def orthanc_binary() -> str | None:
    """Where Debian put the Orthanc server, if it is installed."""
    return next((b for b in ORTHANC_BINARIES if Path(b).exists()), shutil.which("Orthanc"))


def dicomweb_plugin() -> str | None:
    """Where Debian put the DICOMweb plugin, if it is installed."""
    return next((p for p in DICOMWEB_PLUGINS if Path(p).exists()), None)


def orthanc_config(directory: Path, port: int, plugin: str) -> dict[str, Any]:
    """Storage in ``directory``, REST on ``port`` for loopback clients with basic auth, no DICOM port."""
    return {
        "Name": "dicomportal-tests",
        "StorageDirectory": str(directory / "storage"),
        "IndexDirectory": str(directory / "index"),
        "StorageCompression": False,
        "HttpPort": port,
        "RemoteAccessAllowed": False,  # loopback clients only
        "AuthenticationEnabled": True,
        "RegisteredUsers": {ORTHANC_USER: ORTHANC_PASSWORD},
        "DicomServerEnabled": False,  # the portal talks REST only; no DICOM port is opened
        "Plugins": [plugin],
        "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        "SaveJobs": False,
        "HttpTimeout": 30,
    }


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the parent dies, even by kill -9."""
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


@contextmanager
def running_orthanc(directory: Path, timeout: float = 30.0) -> Iterator[OrthancServer]:
    """Start Orthanc with its data in ``directory``; stop it on leaving the block.

    :raises OrthancDidNotStart: not installed, exited, or silent for ``timeout`` seconds.
    """
    binary, plugin = orthanc_binary(), dicomweb_plugin()
    if binary is None or plugin is None:
        raise OrthancDidNotStart("Orthanc is not installed: apt-get install orthanc orthanc-dicomweb")
    port = free_port()
    config = directory / "orthanc.json"
    config.write_text(json.dumps(orthanc_config(directory, port, plugin)))
    log_path = directory / "orthanc.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, str(config)], stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
        )
        server = OrthancServer(f"http://127.0.0.1:{port}", process, directory)
        try:
            _wait_for(server, log_path, timeout)
            yield server
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_for(server: OrthancServer, log: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.process.poll() is not None:
            raise OrthancDidNotStart(
                f"Orthanc exited with {server.process.returncode}:\n{log.read_text()[-2000:]}"
            )
        try:
            if server.session().get(f"{server.url}/system", timeout=1).ok:
                return
        except requests.RequestException:
            pass
        time.sleep(0.1)
    raise OrthancDidNotStart(f"Orthanc did not answer within {timeout:g} s:\n{log.read_text()[-2000:]}")
