"""Run localstripe (a real, stateful Stripe API server) on 127.0.0.1, in memory only.

The stock ``localstripe`` command binds every interface and pickles its state to a fixed path in
/tmp after every write, so two instances clobber each other (LOCALSTRIPE.md). This launcher binds
loopback only and keeps everything in memory. Used by ``dicomportal stripe-server``, the demo and
the test fixtures.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from types import TracebackType


def serve(host: str = "127.0.0.1", port: int = 8420) -> None:
    """Serve localstripe in this process until interrupted."""
    import logging

    from aiohttp import web
    from localstripe import resources, server

    resources.Store.dump_to_disk = lambda self: None  # type: ignore[method-assign]
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
    """A localstripe child process: ``with LocalStripe() as ls: ls.api_base``."""

    def __init__(self, port: int | None = None, host: str = "127.0.0.1") -> None:
        self.host = host
        self.port = port or free_port(host)
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def api_base(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout: float = 20.0) -> LocalStripe:
        """Start the server and wait until it answers HTTP."""
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "dicomportal.stripe_server",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--parent-pid",
                str(os.getpid()),
            ],
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
    parser = argparse.ArgumentParser(description="localstripe on loopback, in memory")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--parent-pid", type=int, help="exit when this process ends")
    args = parser.parse_args(argv)
    if args.parent_pid:
        exit_with_parent(args.parent_pid)
    serve(args.host, args.port)


if __name__ == "__main__":
    main()
