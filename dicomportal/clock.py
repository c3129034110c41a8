"""The only source of "now" in billing code.

Real time by default. Tests move it with ``time-machine``; the demo and ``dicomportal tick --now``
move it with :func:`travel_to`, which keeps an offset so time keeps flowing from the new point.

The demo also keeps its clock in a file in its data dir (:func:`keep_in`): every move is saved, and
the next start continues from there. What is kept is the clock's lead over real time, so the demo's
time goes on flowing while it is stopped, like a server that was down for a while (the worker
catches up on whatever fell due meanwhile); it never starts earlier than the moment last saved, even
if the machine's clock was set back. :func:`now` itself reads no file.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from contextlib import suppress
from datetime import UTC, datetime, timedelta
from pathlib import Path

_offset = timedelta(0)
_state_file: Path | None = None
_lock = threading.Lock()


def now() -> datetime:
    """The current time, timezone-aware UTC."""
    return datetime.now(UTC) + _offset


def travel_to(moment: datetime) -> None:
    """Make :func:`now` answer ``moment`` from here on (and flow on from it).

    When the clock is kept in a file, the move is saved first: if saving fails, time does not move.
    """
    global _offset
    if moment.tzinfo is None:
        raise ValueError("travel_to needs a timezone-aware datetime")
    with _lock:
        offset = moment - datetime.now(UTC)
        if _state_file is not None:
            _save(_state_file, offset)
        _offset = offset


def reset() -> None:
    """Go back to real time, and stop keeping the clock in a file."""
    global _offset, _state_file
    with _lock:
        _offset = timedelta(0)
        _state_file = None


def keep_in(path: Path) -> None:
    """Continue the clock saved in ``path`` (if any), then save every move there.

    The saved clock resumes with the lead over real time it had, and never earlier than the demo's
    time when it was saved. Call :func:`save` at shutdown to record the last moment.

    :raises ValueError: when ``path`` exists but is not a clock this function saved.
    """
    global _state_file
    saved = _load(path)
    with _lock:
        _state_file = None
    if saved is not None:
        demo_now, real_now = saved
        travel_to(max(datetime.now(UTC) + (demo_now - real_now), demo_now))
    with _lock:
        _state_file = path
        _save(path, _offset)


def save() -> None:
    """Record the clock's current moment in its file (no-op unless :func:`keep_in` was called)."""
    with _lock:
        if _state_file is not None:
            _save(_state_file, _offset)


def _save(path: Path, offset: timedelta) -> None:
    """Write the demo's time and the real time to ``path`` atomically (temporary file, then rename)."""
    real_now = datetime.now(UTC)
    state = {"demo_now": (real_now + offset).isoformat(), "real_now": real_now.isoformat()}
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            json.dump(state, file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def _load(path: Path) -> tuple[datetime, datetime] | None:
    """The (demo time, real time) saved in ``path``, or None when there is no file."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
        moments = datetime.fromisoformat(state["demo_now"]), datetime.fromisoformat(state["real_now"])
    except FileNotFoundError:
        return None
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(
            f"{path} is not a saved demo clock ({exc}); delete it to go back to real time"
        ) from exc
    if any(moment.tzinfo is None for moment in moments):
        raise ValueError(f"{path} is not a saved demo clock (naive time); delete it to go back to real time")
    return moments
