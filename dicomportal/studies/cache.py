"""Per-process caches: decoded volumes, prepared 3D data, and rendered images.

Each is a least-recently-used map bounded in bytes. ``get_or_make`` runs the maker at most once
per key even when several threads ask at the same moment (the others wait for its result), so
no request decodes a series that another request is already decoding.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Generic, TypeVar

if TYPE_CHECKING:
    from dicomportal.studies.render3d import Prepared
    from dicomportal.studies.volume import Volume

V = TypeVar("V")

MB = 1024 * 1024


class LruCache(Generic[V]):
    """A thread-safe LRU map bounded by the total ``size_of`` its values."""

    def __init__(self, max_bytes: int, size_of: Callable[[V], int]) -> None:
        self.max_bytes = max_bytes
        self._size_of = size_of
        self._items: OrderedDict[Hashable, tuple[V, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self._making: dict[Hashable, threading.Lock] = {}
        self.made = 0  # how many values were made (a miss each): tests count decodes with it

    def get(self, key: Hashable) -> V | None:
        """The cached value, or None."""
        with self._lock:
            found = self._items.get(key)
            if found is None:
                return None
            self._items.move_to_end(key)
            return found[0]

    def get_or_make(self, key: Hashable, make: Callable[[], V]) -> V:
        """The cached value, else ``make()``'s, made once however many threads ask at once."""
        value = self.get(key)
        if value is not None:
            return value
        with self._lock:
            key_lock = self._making.setdefault(key, threading.Lock())
        with key_lock:
            value = self.get(key)
            if value is None:
                value = make()
                self.put(key, value)
                with self._lock:
                    self.made += 1
        with self._lock:
            self._making.pop(key, None)
        return value

    def put(self, key: Hashable, value: V) -> None:
        """Store ``value``, evicting the least recently used entries beyond the byte budget."""
        size = self._size_of(value)
        with self._lock:
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._items[key] = (value, size)
            self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, evicted) = self._items.popitem(last=False)
                self._bytes -= evicted

    def clear(self) -> None:
        """Forget everything (tests)."""
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self.made = 0

    @property
    def size_bytes(self) -> int:
        """What the cached values take."""
        return self._bytes

    def __len__(self) -> int:
        return len(self._items)


def configure(volume_mb: int, image_mb: int) -> None:
    """Set the byte budgets (from the ``VIEWER_CACHE_MB`` setting)."""
    volumes.max_bytes = volume_mb * MB
    prepared.max_bytes = max(16, volume_mb // 8) * MB
    images.max_bytes = image_mb * MB


def _nbytes(value: Volume | Prepared) -> int:
    return value.nbytes


volumes: LruCache[Volume] = LruCache(768 * MB, _nbytes)  # decoded series
prepared: LruCache[Prepared] = LruCache(96 * MB, _nbytes)  # what each 3D frame of a series reuses
images: LruCache[bytes] = LruCache(128 * MB, len)  # rendered PNG and STL bytes, by their parameters
