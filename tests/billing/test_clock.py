"""The demo clock kept in a file: every move is saved, a restart resumes it, never earlier.

Pure tests (no app, no database): ``time-machine`` plays the machine's real clock, and
``clock.reset()`` plays the end of the demo process (the module forgets its offset and its file).
"""

from __future__ import annotations

import builtins
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine

from dicomportal import clock

REAL = datetime(2026, 3, 10, 9, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def fresh_clock() -> Iterator[None]:
    clock.reset()
    yield
    clock.reset()


def restart() -> None:
    """What stopping the demo does to the in-process clock: it forgets everything."""
    clock.reset()


def test_a_moved_clock_resumes_after_a_restart_with_its_lead_over_real_time(tmp_path: Path) -> None:
    kept = tmp_path / "demo-clock.json"
    with time_machine.travel(REAL, tick=False) as machine:
        clock.keep_in(kept)
        clock.travel_to(REAL + timedelta(days=30))  # the /dev/clock button; no clock.save() after it
        restart()
        assert clock.now() == REAL

        machine.move_to(REAL + timedelta(hours=2))  # the demo was stopped for two hours
        clock.keep_in(kept)

        assert clock.now() == REAL + timedelta(days=30, hours=2)


def test_a_restart_never_goes_back_before_the_last_saved_moment(tmp_path: Path) -> None:
    kept = tmp_path / "demo-clock.json"
    with time_machine.travel(REAL, tick=False) as machine:
        clock.keep_in(kept)
        clock.travel_to(REAL + timedelta(days=30))
        machine.move_to(REAL + timedelta(hours=5))
        clock.save()  # at shutdown: the demo's time was REAL + 30 days 5 hours
        restart()

        machine.move_to(REAL - timedelta(days=1))  # the machine's clock was set back
        clock.keep_in(kept)

        assert clock.now() == REAL + timedelta(days=30, hours=5)


def test_a_fresh_data_dir_starts_at_real_time_and_records_it(tmp_path: Path) -> None:
    kept = tmp_path / "demo-clock.json"
    with time_machine.travel(REAL, tick=False):
        clock.keep_in(kept)

        assert clock.now() == REAL
        assert datetime.fromisoformat(json.loads(kept.read_text())["demo_now"]) == REAL


def test_now_reads_no_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    kept = tmp_path / "demo-clock.json"
    with time_machine.travel(REAL, tick=False):
        clock.keep_in(kept)
        clock.travel_to(REAL + timedelta(days=7))

        def no_files(*_args: Any, **_kwargs: Any) -> Any:
            raise AssertionError("clock.now() opened a file")

        monkeypatch.setattr(builtins, "open", no_files)
        monkeypatch.setattr(Path, "read_text", no_files)
        assert clock.now() == REAL + timedelta(days=7)


def test_a_clock_that_is_not_kept_writes_nothing(tmp_path: Path) -> None:
    kept = tmp_path / "demo-clock.json"
    clock.keep_in(kept)
    before = kept.read_text()
    clock.reset()  # `dicomportal tick --now` and the tests move the clock this way

    clock.travel_to(datetime(2030, 1, 1, tzinfo=UTC))

    assert kept.read_text() == before
    assert [p.name for p in tmp_path.iterdir()] == ["demo-clock.json"]


def test_a_failed_save_leaves_both_the_file_and_the_time_unchanged(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = tmp_path / "demo-clock.json"
    with time_machine.travel(REAL, tick=False):
        clock.keep_in(kept)
        clock.travel_to(REAL + timedelta(days=1))
        before = kept.read_text()

        def write_half_then_fail(obj: Any, file: Any, **_kwargs: Any) -> None:
            text = json.dumps(obj)
            file.write(text[: len(text) // 2])
            file.flush()
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(json, "dump", write_half_then_fail)
        with pytest.raises(OSError, match="No space left"):
            clock.travel_to(REAL + timedelta(days=31))
        monkeypatch.undo()

        assert clock.now() == REAL + timedelta(days=1)
        assert kept.read_text() == before
        assert [p.name for p in tmp_path.iterdir()] == ["demo-clock.json"]
        restart()
        clock.keep_in(kept)
        assert clock.now() == REAL + timedelta(days=1)


@pytest.mark.parametrize(
    "content",
    [
        "garbage",
        "[]",
        '{"demo_now": "2026-03-10T09:00:00+00:00"}',
        '{"demo_now": "2026-03-10T09:00:00", "real_now": "2026-03-10T09:00:00"}',
    ],
)
def test_an_unreadable_clock_file_is_refused_and_left_alone(tmp_path: Path, content: str) -> None:
    kept = tmp_path / "demo-clock.json"
    kept.write_text(content)

    with pytest.raises(ValueError, match="delete it to go back to real time"):
        clock.keep_in(kept)

    assert kept.read_text() == content
    clock.travel_to(datetime(2030, 1, 1, tzinfo=UTC))
    assert kept.read_text() == content  # not kept: a refused file is never overwritten
