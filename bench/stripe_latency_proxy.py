"""An HTTP proxy that adds a fixed delay to every request before passing it to localstripe.

localstripe answers in about a millisecond on loopback; real Stripe takes hundreds. Benchmarks
put this proxy between the app and localstripe so a pass costs what it would against Stripe.

    python bench/stripe_latency_proxy.py --upstream http://127.0.0.1:8420 --port 8421 --delay-ms 400

Many requests wait at once (asyncio), as they would on Stripe's side.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import time
import urllib.error
import urllib.request
from types import TracebackType

from aiohttp import ClientSession, ClientTimeout, TCPConnector, web

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "host", "content-encoding"}


def build_app(upstream: str, delay_s: float) -> web.Application:
    """The proxy as an aiohttp app: every request sleeps ``delay_s``, then goes upstream."""

    async def start(app: web.Application) -> None:
        app["session"] = ClientSession(
            connector=TCPConnector(limit=0), timeout=ClientTimeout(total=120), auto_decompress=False
        )

    async def stop(app: web.Application) -> None:
        await app["session"].close()

    async def forward(request: web.Request) -> web.Response:
        await asyncio.sleep(delay_s)
        headers = {k: v for k, v in request.headers.items() if k.lower() not in HOP_BY_HOP}
        async with request.app["session"].request(
            request.method, upstream + request.path_qs, headers=headers, data=await request.read()
        ) as answer:
            body = await answer.read()
            out = {k: v for k, v in answer.headers.items() if k.lower() not in HOP_BY_HOP}
            return web.Response(status=answer.status, body=body, headers=out)

    app = web.Application(client_max_size=16 * 1024 * 1024)
    app.on_startup.append(start)
    app.on_cleanup.append(stop)
    app.router.add_route("*", "/{tail:.*}", forward)
    return app


class LatencyProxy:
    """The proxy as a child process: ``with LatencyProxy(upstream, 400) as proxy: proxy.url``."""

    def __init__(self, upstream: str, delay_ms: int, port: int) -> None:
        self.upstream, self.delay_ms, self.port = upstream, delay_ms, port
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> LatencyProxy:
        command = [sys.executable, __file__, "--upstream", self.upstream, "--port", str(self.port)]
        self.process = subprocess.Popen([*command, "--delay-ms", str(self.delay_ms)])
        for _ in range(200):
            try:
                urllib.request.urlopen(f"{self.url}/js.stripe.com/v3/", timeout=5).close()
                return self
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.05)
        raise RuntimeError("the latency proxy did not start")

    def __exit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        if self.process is not None:
            self.process.terminate()
            self.process.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--upstream", required=True)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--delay-ms", type=int, default=400)
    args = parser.parse_args()
    app = build_app(args.upstream.rstrip("/"), args.delay_ms / 1000)
    web.run_app(app, host="127.0.0.1", port=args.port, print=None, access_log=None)


if __name__ == "__main__":
    main()
