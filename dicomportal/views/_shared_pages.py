"""Pages every anonymous visitor sees alike (the pricing page, the help centre), rendered once per
process and served from memory.

Only for visitors who are not logged in and have no message waiting to be shown; logged-in
customers always get a fresh render (their pages know who they are). The key names everything the
page depends on besides that: its URL arguments, whether htmx asked for the fragment, and, for
pages built from the catalog, the catalog's revision, so a change made by ``dicomportal seed`` in
any process is seen by every process at its next request. Such pages carry no CSRF token (they
have no form an anonymous visitor posts), so they set no session cookie either.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

from flask import Response, current_app, session
from flask_login import current_user

MAX_PAGES = 256


Kept = tuple[bytes, int, list[tuple[str, str]]]


class SharedPages:
    """A small LRU of rendered responses, one per app, shared by the threads of one process."""

    def __init__(self, name: str, max_pages: int = MAX_PAGES) -> None:
        self._name = f"shared_pages.{name}"
        self._lock = threading.Lock()
        self._max = max_pages

    @property
    def _pages(self) -> OrderedDict[Hashable, Kept]:
        pages: OrderedDict[Hashable, Kept] = current_app.extensions.setdefault(self._name, OrderedDict())
        return pages

    def serve(self, key: Hashable, render: Callable[[], Response]) -> Response:
        """The page for ``key``: from memory for an anonymous visitor, else ``render()``."""
        if current_user.is_authenticated or session.get("_flashes"):
            return render()
        pages = self._pages
        with self._lock:
            kept = pages.get(key)
            if kept is not None:
                pages.move_to_end(key)
        if kept is None:
            response = render()
            if response.status_code != 200 or "Set-Cookie" in response.headers:
                return response
            kept = (response.get_data(), response.status_code, list(response.headers.items()))
            with self._lock:
                pages[key] = kept
                while len(pages) > self._max:
                    pages.popitem(last=False)
        body, status, headers = kept
        return Response(body, status=status, headers=headers)
