"""Run localstripe (a real, stateful Stripe API server) on 127.0.0.1, in memory or kept in a file.

The stock ``localstripe`` command binds every interface and pickles its state to a fixed path in
/tmp after every write, so two instances clobber each other
(docs/localstripe.md#how-our-launcher-extends-it). This launcher binds loopback only and keeps
everything in memory, or, given a state file (the demo's data dir), loads the store from it at
start and saves it atomically after every write request and at shutdown.
Used by ``dicomportal stripe-server``, the demo and the test fixtures.

Webhook registrations are not part of the store (localstripe keeps them in a module dict), so they
are never saved: whoever starts the server registers its webhooks again (the demo does, at every start).
"""

from __future__ import annotations

import argparse
import os
import pickle
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Awaitable, Callable
from contextlib import suppress
from pathlib import Path
from types import TracebackType
from typing import Any

WRITE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})


class StateFileError(Exception):
    """The state file exists but cannot be loaded; the message says what to do."""


def save_state(store: dict[str, Any], path: Path) -> None:
    """Pickle ``store`` to ``path`` atomically: a crash at any point leaves the previous file whole.

    The pickle goes to a temporary file in the same folder, is flushed to disk, then renamed over
    ``path`` (``os.replace`` is atomic on POSIX and Windows). The file is readable by its owner only.
    """
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as file:
            pickle.dump(dict(store), file, protocol=pickle.HIGHEST_PROTOCOL)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


def load_state(path: Path) -> dict[str, Any] | None:
    """The store saved in ``path``, or None when there is no such file.

    :raises StateFileError: when the file is not a store this localstripe can read.
    """
    try:
        with path.open("rb") as file:
            state = pickle.load(file)
    except FileNotFoundError:
        return None
    except Exception as exc:  # unpickling can raise nearly anything on a foreign or damaged file
        message = f"cannot load localstripe's state from {path} ({exc!r}); delete it to start Stripe afresh"
        raise StateFileError(message) from exc
    if not isinstance(state, dict):
        raise StateFileError(f"{path} does not hold a localstripe store; delete it to start Stripe afresh")
    return state


Handler = Callable[[Any], Awaitable[Any]]


def keep_store_in(app: Any, store: dict[str, Any], path: Path) -> None:
    """Load ``store`` from ``path`` now, then save it after every write request and at shutdown.

    Saving happens before the response is sent, so whatever a client was told is on disk.
    """
    from aiohttp import web

    saved = load_state(path)
    if saved is not None:
        store.clear()
        store.update(saved)
    for leftover in path.parent.glob(f".{path.name}.*.tmp"):  # from a save cut short by a crash
        leftover.unlink(missing_ok=True)

    @web.middleware
    async def save_after_writes(request: web.Request, handler: Handler) -> Any:
        try:
            return await handler(request)
        finally:
            if request.method in WRITE_METHODS:
                save_state(store, path)

    async def save_at_shutdown(_app: web.Application) -> None:
        save_state(store, path)

    app.middlewares.append(save_after_writes)
    app.on_cleanup.append(save_at_shutdown)


def index_store_by_type(resources: Any) -> None:
    """Make localstripe list the objects of one kind without scanning every object it holds.

    localstripe finds "all the refunds" or "all the PaymentIntents" by walking its whole store,
    and confirming a PaymentIntent lists the new charge's refunds that way: each charge then costs
    time in proportion to everything ever created, so a run over 10,000 renewals would measure
    localstripe rather than the portal. This keeps an index of the store by object type, updated on
    every write, and lists from it (same objects, same order).
    """
    by_type: dict[str, dict[str, Any]] = {}

    def kind(key: str) -> str:
        return key.partition(":")[0]

    def rebuild(store: dict[str, Any]) -> None:
        by_type.clear()
        for key, value in dict.items(store):
            by_type.setdefault(kind(key), {})[key] = value

    def setitem(store: dict[str, Any], key: str, value: Any) -> None:
        dict.__setitem__(store, key, value)
        by_type.setdefault(kind(key), {})[key] = value

    def delitem(store: dict[str, Any], key: str) -> None:
        dict.__delitem__(store, key)
        by_type.get(kind(key), {}).pop(key, None)

    def clear(store: dict[str, Any]) -> None:
        dict.clear(store)
        by_type.clear()

    def update(store: dict[str, Any], *args: Any, **kwargs: Any) -> None:
        dict.update(store, *args, **kwargs)
        rebuild(store)

    def list_all(
        cls: type[Any], /, url: str, limit: Any = None, starting_after: Any = None, **kwargs: Any
    ) -> Any:
        if kwargs:
            raise resources.UserError(400, "Unexpected " + ", ".join(kwargs.keys()))
        found = resources.List(url, limit=limit, starting_after=starting_after)
        found._list = list(by_type.get(cls.object, {}).values())
        return found

    store_class = resources.Store
    store_class.__setitem__, store_class.__delitem__ = setitem, delitem
    store_class.clear, store_class.update = clear, update
    resources.StripeObject._api_list_all = classmethod(list_all)
    rebuild(resources.store)


def know_customer_names(resources: Any) -> None:
    """Teach localstripe the Customer's ``business_name`` and ``individual_name`` (added to Stripe's
    API on 2025-09-30; localstripe predates them and refuses them with 400), stored and returned
    like ``name``, an empty string clearing one as at Stripe. Only these two fields: localstripe
    otherwise stays as strict as it is."""
    customer = resources.Customer
    create = customer.__init__

    def init(self: Any, business_name: Any = None, individual_name: Any = None, **kwargs: Any) -> None:
        for value in (business_name, individual_name):
            if value is not None and not isinstance(value, str):
                raise resources.UserError(400, "Bad request")
        create(self, **kwargs)
        self.business_name, self.individual_name = business_name or None, individual_name or None

    update = customer._update

    def update_names(self: Any, **data: Any) -> None:
        names = {field: data.pop(field) for field in ("business_name", "individual_name") if field in data}
        if not all(isinstance(value, str) for value in names.values()):
            raise resources.UserError(400, "Bad request")
        update(self, **data)  # its own checks first: a refused update changes nothing
        for field, value in names.items():
            setattr(self, field, value or None)

    customer.__init__ = init
    customer._update = update_names
    customer.business_name = customer.individual_name = None  # customers pickled before this patch


def serve(host: str = "127.0.0.1", port: int = 8420, state_file: Path | None = None) -> None:
    """Serve localstripe in this process until interrupted (SIGINT or SIGTERM).

    In memory only, unless ``state_file`` is given: then the store is loaded from it if it exists
    and saved to it after every write (see :func:`keep_store_in`).

    :raises StateFileError: when ``state_file`` exists but cannot be loaded.
    """
    import logging

    from aiohttp import web
    from localstripe import resources

    from dicomportal.devtools import localstripe_disputes, localstripe_refunds, localstripe_today

    localstripe_today.install(resources)  # before localstripe.server builds its routes
    from localstripe import server

    # localstripe pickles its whole store to /tmp/localstripe.pickle on every change: never do that.
    resources.Store.dump_to_disk = lambda self: None
    index_store_by_type(resources)
    know_customer_names(resources)
    localstripe_disputes.install(resources, server.app)
    localstripe_refunds.install(resources, server.app)
    if state_file is not None:
        keep_store_in(server.app, resources.store, state_file)
    logging.getLogger("aiohttp.access").setLevel(logging.WARNING)
    web.run_app(server.app, host=host, port=port, print=None, access_log=None)


def exit_with_parent(parent_pid: int, interval: float = 0.5) -> None:
    """Exit this process as soon as ``parent_pid`` is gone (no orphan if the parent is killed -9)."""

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(interval)
        os._exit(0)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class LocalStripe:
    """A localstripe child process: ``with LocalStripe() as ls: ls.api_base``.

    In memory, unless ``state_file`` is given: then Stripe's state is loaded from and saved to it.
    """

    def __init__(
        self, port: int | None = None, host: str = "127.0.0.1", state_file: Path | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.state_file = state_file
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> LocalStripe:
        """Start the server and wait until it answers HTTP."""
        command = [
            sys.executable,
            "-m",
            "dicomportal.devtools.stripe_server",
            "--host",
            self.host,
            "--port",
            str(self.port),
        ]
        command += ["--parent-pid", str(os.getpid())]
        if self.state_file is not None:
            command += ["--state-file", str(self.state_file)]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONWARNINGS": "ignore"},
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                err = self.process.stderr.read().decode() if self.process.stderr else ""
                raise RuntimeError(f"localstripe exited at start: {err[-2000:]}")
            if self.is_up():
                return self
            time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"localstripe did not answer on {self.api_base} within {timeout}s")

    def is_up(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.api_base}/js.stripe.com/v3/", timeout=1).close()
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            return False
        return True

    def register_webhook(self, url: str, secret: str, name: str = "dicomportal") -> None:
        """Ask localstripe to POST its events to ``url``, signed with ``secret``."""
        data = urllib.parse.urlencode({"url": url, "secret": secret}).encode()
        urllib.request.urlopen(f"{self.api_base}/_config/webhooks/{name}", data=data, timeout=5).close()

    def reset(self) -> None:
        """Forget every customer, payment method, intent and refund (webhook registrations stay)."""
        request = urllib.request.Request(f"{self.api_base}/_config/data", method="DELETE")
        urllib.request.urlopen(request, timeout=5).close()

    def stop(self) -> None:
        """Stop the server (SIGTERM, so a kept store is saved), killing it if it hangs."""
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        if self.process and self.process.stderr:
            self.process.stderr.close()

    def __enter__(self) -> LocalStripe:
        return self.start()

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    """The launcher's command line, for the demo and the tests, which start it as a child process:
    ``python -m dicomportal.devtools.stripe_server [--host H] [--port P] [--state-file F] [--parent-pid N]``.
    """
    parser = argparse.ArgumentParser(description="localstripe on loopback, in memory or kept in a file")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument(
        "--state-file", type=Path, help="load Stripe's state from this file and save it there"
    )
    parser.add_argument("--parent-pid", type=int, help="exit when this process ends")
    args = parser.parse_args(argv)
    if args.parent_pid:
        exit_with_parent(args.parent_pid)
    try:
        serve(args.host, args.port, args.state_file)
    except StateFileError as exc:
        sys.exit(f"localstripe: {exc}")


if __name__ == "__main__":
    main()
