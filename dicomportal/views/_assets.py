"""Static files under content-hashed names, cached for a year and sent compressed (WhiteNoise).

At start-up every file of ``static/`` gets a copy named after its content (``css/app.css`` ->
``css/app.3f2a1b9c0d4e.css``) and a gzip twin, in ``<instance>/static-build`` (written atomically, so
several workers starting at once agree). ``url_for("static", ...)`` then gives the hashed name,
which WhiteNoise serves ahead of Flask as immutable for a year, compressed when the browser accepts
it. A changed file gets a new name, so no browser keeps an old copy. The plain names still work
(Flask serves them, uncached) for pages rendered before a release.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import re
import tempfile
from pathlib import Path
from typing import Any

from flask import Flask
from whitenoise import WhiteNoise

HASHED = re.compile(r"\.[0-9a-f]{12}\.[A-Za-z0-9]+$")
COMPRESSIBLE = {".css", ".js", ".svg", ".txt", ".json", ".map"}
YEAR = 365 * 24 * 3600


def register_static_assets(app: Flask) -> None:
    """Build the hashed copies, serve them through WhiteNoise, and make ``url_for`` name them."""
    source = Path(str(app.static_folder))
    build = Path(app.instance_path) / "static-build"
    build.mkdir(mode=0o700, parents=True, exist_ok=True)  # like everything in the data dir
    manifest = dict(_hashed_names(source))
    for name, hashed in manifest.items():
        _publish(source / name, build / hashed)
    served = WhiteNoise(app.wsgi_app, max_age=YEAR, immutable_file_test=lambda _path, url: HASHED.search(url))
    served.add_files(str(build), prefix=(app.static_url_path or "/static").strip("/") + "/")
    app.wsgi_app = served  # type: ignore[method-assign]
    app.extensions["static_manifest"] = manifest

    @app.url_defaults
    def hashed_static(endpoint: str, values: dict[str, Any]) -> None:
        if endpoint == "static" and values.get("filename") in manifest:
            values["filename"] = manifest[values["filename"]]


def _hashed_names(source: Path) -> list[tuple[str, str]]:
    """(plain name, content-hashed name) of every file under ``source``."""
    pairs = []
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        name = path.relative_to(source).as_posix()
        digest = hashlib.sha256(path.read_bytes()).hexdigest()[:12]
        stem, dot, suffix = name.rpartition(".")
        pairs.append((name, f"{stem}.{digest}.{suffix}" if dot else f"{name}.{digest}"))
    return pairs


def _publish(source: Path, target: Path) -> None:
    """Copy ``source`` to ``target``, with a gzip twin for text, unless it is there already."""
    if target.exists():
        return
    data = source.read_bytes()
    _write_atomically(target, data)
    if target.suffix in COMPRESSIBLE:
        _write_atomically(target.with_name(target.name + ".gz"), gzip.compress(data, mtime=0))


def _write_atomically(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
