"""The data directory is private (0700, the SQLite file 0600) and its secret key is made race-free."""

from __future__ import annotations

import multiprocessing
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask_migrate import upgrade

from dicomportal import create_app
from dicomportal.config import secret_key

PROCESSES = 6
ROUNDS = 100


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


@pytest.fixture
def permissive_umask() -> Iterator[None]:
    """The usual umask (022), under which files are created world-readable unless we take care."""
    old = os.umask(0o022)
    yield
    os.umask(old)


@pytest.fixture
def no_settings_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.delenv("DATABASE_URL", raising=False)


@pytest.mark.usefixtures("permissive_umask", "no_settings_from_env")
def test_a_new_data_dir_its_key_and_database_are_readable_by_the_owner_only(tmp_path: Path) -> None:
    data = tmp_path / "data"
    app = create_app({"TESTING": True}, instance_path=str(data))
    with app.app_context():
        upgrade()
        app.extensions["sqlalchemy"].engine.dispose()

    assert {p.name: oct(mode(p)) for p in [data, *data.iterdir()]} == {
        "data": "0o700",
        "secret_key": "0o600",
        "dicomportal.db": "0o600",
        "static-build": "0o700",  # the static files under content-hashed names (public anyway)
    }


@pytest.mark.usefixtures("permissive_umask", "no_settings_from_env")
def test_an_existing_world_readable_data_dir_and_database_are_tightened(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir(mode=0o755)
    (data / "dicomportal.db").touch(mode=0o644)
    os.chmod(data, 0o755)  # mkdir's mode is filtered by the umask; make sure it is loose
    os.chmod(data / "dicomportal.db", 0o644)

    create_app({"TESTING": True}, instance_path=str(data))

    assert (oct(mode(data)), oct(mode(data / "dicomportal.db"))) == ("0o700", "0o600")


@pytest.mark.usefixtures("permissive_umask", "no_settings_from_env")
def test_a_sqlite_file_elsewhere_is_private_too(tmp_path: Path) -> None:
    database = tmp_path / "db" / "portal.db"
    create_app(
        {"TESTING": True, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{database}"}, instance_path=str(tmp_path)
    )

    assert (oct(mode(database.parent)), oct(mode(database))) == ("0o700", "0o600")


def boot(folders: list[str], barrier: Any, results: Any) -> None:
    """One process: at each round, start together with the others and read the secret key."""
    for folder in folders:
        barrier.wait()
        try:
            results.put((folder, secret_key(Path(folder))))
        except Exception as exc:  # reported to the test, which fails on it
            results.put((folder, f"{type(exc).__name__}: {exc}"))


@pytest.mark.usefixtures("no_settings_from_env")
def test_processes_booting_at_once_all_get_the_same_complete_key(tmp_path: Path) -> None:
    folders = [str(tmp_path / f"round-{n}") for n in range(ROUNDS)]
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(PROCESSES), spawn.Queue()
    processes = [spawn.Process(target=boot, args=(folders, barrier, results)) for _ in range(PROCESSES)]
    for process in processes:
        process.start()
    answers = [results.get(timeout=120) for _ in range(PROCESSES * ROUNDS)]
    for process in processes:
        process.join(30)

    keys: dict[str, set[str]] = {}
    for folder, key in answers:
        keys.setdefault(folder, set()).add(key)
    for folder in folders:
        assert len(keys[folder]) == 1, keys[folder]  # one key per folder, the same in every process
        (key,) = keys[folder]
        assert len(key) == 64, key  # complete: 48 random bytes, url-safe base64
        assert (Path(folder) / "secret_key").read_text() == key
        assert oct(mode(Path(folder) / "secret_key")) == "0o600"
        assert sorted(p.name for p in Path(folder).iterdir()) == ["secret_key"]  # no temporary left
    assert all(p.exitcode == 0 for p in processes)
