"""The DICOM viewer's speed: rendering in-process, and the slice endpoint under gunicorn.

    .venv/bin/python bench/viewer.py [--duration 10] [--workers 1] [--connections 4] [--no-write]

In-process (the demo CT head, 108 x 256 x 256; median of repeated runs, series already decoded
unless said): decoding the series, one axial slice rendered to PNG without the image cache
("cold"), the same request answered from the cache ("cached"), one coronal (MPR) slice, one 3D
frame (256 x 256, bone volume rendering and MIP, prepared volume cached), the bone STL export.

Over HTTP: ``wsgi:app`` under the same gunicorn as ``bench/run.py`` (sync workers, loopback, a
temporary migrated and seeded SQLite database), loaded by wrk (or run.py's Python fallback)
with a cached demo slice, the same slice revalidated with ``If-None-Match`` (a 304), and a bare
Flask endpoint for the ratio. Records the run in bench/RESULTS.md under "Viewer". Targets:
cached slice >= 1,000 requests/s per worker, cold slice <= 5 ms, 3D frame <= 50 ms.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

# bench/ is not a package: run.py is imported from its folder (on sys.path above).
from run import (
    BENCH,
    RESULTS,
    ROOT,
    Measurement,
    Target,
    fetch,
    free_port,
    gunicorn,
    gunicorn_command,
    machine,
    measure,
    prepare_database,
)

VIEWER_MARKER = "<!-- viewer runs: newest first; bench/viewer.py inserts below this line -->"
VIEWER_HEADER = f"""
# Viewer

The DICOM viewer (`bench/viewer.py`): rendering times measured in-process on the demo CT head
(108 x 256 x 256, JPEG-LS), and the slice endpoint's throughput under gunicorn as above. Targets:
a cached slice at 1,000 requests/s or more per worker, a cold slice in 5 ms or less, a 3D frame
(256 x 256) in 50 ms or less.

{VIEWER_MARKER}
"""


def median_ms(work: Callable[[], object], runs: int) -> float:
    """Median wall time of ``runs`` calls, in ms."""
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        work()
        times.append((time.perf_counter() - started) * 1000)
    return statistics.median(times)


def in_process() -> list[tuple[str, float, str]]:
    """(what, median ms, target) for each rendering step."""
    from dicomportal.studies import cache, images, mesh, render, render3d
    from dicomportal.studies.dicomio import read_series
    from dicomportal.studies.render import Plane
    from dicomportal.studies.sources import DEMO_KEYS, open_study
    from dicomportal.studies.volume import Window

    study = open_study("demo", None).study
    uid = study.series[0].uid
    decode = median_ms(lambda: read_series(DEMO_KEYS["demo"].files()), 3)
    (volume,) = read_series(DEMO_KEYS["demo"].files())
    window = Window(40, 400)
    indexes = iter(range(10**6))
    cold = median_ms(
        lambda: render.png_bytes(render.render_slice(volume, Plane.AXIAL, next(indexes) % 108, window)), 200
    )
    cache.volumes.put((study.source_id, uid), volume)
    job = images.slice_job(study, uid, Plane.AXIAL, 54, window)
    job.body()
    cached = median_ms(job.body, 2000)
    mpr = median_ms(
        lambda: render.png_bytes(render.render_slice(volume, Plane.CORONAL, next(indexes) % 256, window)), 200
    )
    prepare = median_ms(lambda: render3d.prepare(volume), 3)
    prepared = render3d.prepare(volume)
    angles = iter(range(10**6))
    bone = median_ms(
        lambda: render.png_bytes(
            render3d.render_frame(prepared, render3d.Mode.BONE, next(angles) * 10 % 360)
        ),
        36,
    )
    mip = median_ms(
        lambda: render.png_bytes(render3d.render_frame(prepared, render3d.Mode.MIP, next(angles) * 10 % 360)),
        36,
    )
    stl = median_ms(lambda: mesh.surface_stl(volume, mesh.BONE), 3)
    return [
        ("decode the series (108 JPEG-LS files), once per process", decode, "-"),
        ("slice, cold: render an axial slice to PNG", cold, "<= 5 ms"),
        ("slice, cached: the same request from the image cache", cached, "-"),
        ("MPR: render a coronal slice to PNG", mpr, "-"),
        ("3D: prepare the volume, once per series", prepare, "-"),
        ("3D frame, bone volume rendering, 256 x 256 PNG", bone, "<= 50 ms"),
        ("3D frame, MIP, 256 x 256 PNG", mip, "<= 50 ms"),
        ("STL export of bone (226-3071 HU)", stl, "-"),
    ]


def slice_url(base_url: str) -> str:
    """The demo's middle axial slice URL, read from the viewer page (so the series UID is real)."""
    status, _, page = fetch(f"{base_url}/viewer/demo")
    found = re.search(r'src="(/viewer/demo/[0-9.]+/axial/\d+\.png\?[^"]+)"', page)
    if status != 200 or found is None:
        raise SystemExit(f"/viewer/demo answered {status} without a slice image: not measuring")
    return base_url + found.group(1).replace("&amp;", "&")


def report(
    rows: list[tuple[str, float, str]],
    results: list[Measurement],
    args: argparse.Namespace,
    tool: str,
    info: dict[str, str],
) -> str:
    when = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    bare = results[0].requests_per_second or 1.0
    lines = [
        f"## {when}",
        "",
        f"Machine: {info['nproc']} CPUs ({info['cpu']}), Python {info['python']}, {info['gunicorn']}. "
        f"Load average before: {info['load']}, after: {info['load_after']}. gunicorn with {args.workers} "
        f"sync worker(s); {tool} on the same machine, {args.connections} connections, {args.duration} s "
        "per URL.",
        "",
        "| in-process step | median ms | target |",
        "| --- | ---: | --- |",
        *(f"| {what} | {ms:.2f} | {target} |" for what, ms, target in rows),
        "",
        "| URL | status | requests/s | per worker | ratio to bare | p50 ms | p99 ms | errors |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in results:
        p50 = "-" if m.p50_ms is None else f"{m.p50_ms:.1f}"
        p99 = "-" if m.p99_ms is None else f"{m.p99_ms:.1f}"
        lines.append(
            f"| {m.target.label} | {m.status} | {m.requests_per_second:,.0f} | "
            f"{m.requests_per_second / args.workers:,.0f} | {m.requests_per_second / bare:.2f} | "
            f"{p50} | {p99} | {m.errors} |"
        )
    lines += ["", f"Command: `python {' '.join(sys.argv)}`", ""]
    return "\n".join(lines)


def write_results(text: str) -> None:
    """Insert this run under the Viewer section of bench/RESULTS.md (made if missing), keeping
    every earlier run there and in the other sections."""
    current = RESULTS.read_text() if RESULTS.exists() else ""
    if VIEWER_MARKER not in current:
        current = current.rstrip("\n") + "\n" + VIEWER_HEADER
    head, _, runs = current.partition(VIEWER_MARKER)
    RESULTS.write_text(f"{head}{VIEWER_MARKER}\n\n{text}\n{runs.lstrip(chr(10))}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument(
        "--workers", type=int, default=1, help="gunicorn workers (default 1: per-worker figures)"
    )
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args(argv)
    if not 1 <= args.duration <= 120 or not 1 <= args.connections <= 64:
        parser.error("keep --duration within 1..120 s and --connections within 1..64")
    tool = "wrk" if shutil.which("wrk") else "python"
    info = machine()
    rows = in_process()
    for what, ms, target in rows:
        print(f"{ms:9.2f} ms  {what}  ({target})")
    bare_port, app_port = free_port(), free_port()
    bare_cmd = gunicorn_command("bare_app:app", BENCH, bare_port, args.workers)
    app_cmd = gunicorn_command("wsgi:app", ROOT, app_port, args.workers)
    app_base = f"http://127.0.0.1:{app_port}"
    with tempfile.TemporaryDirectory(prefix="dicomportal-bench-") as tmp:
        env = prepare_database(Path(tmp))
        with (
            gunicorn(bare_cmd, env, f"http://127.0.0.1:{bare_port}/"),
            gunicorn(app_cmd, env, f"{app_base}/plans/"),
        ):
            url = slice_url(app_base)
            _, headers, _ = fetch(url)
            etag = headers["etag"][0]
            targets = [
                Target("bare Flask `/`", f"http://127.0.0.1:{bare_port}/"),
                Target("demo axial slice (cached PNG)", url),
                Target("the same, revalidated (`If-None-Match`: 304)", url, (("If-None-Match", etag),)),
            ]
            results = [measure(t, tool, args.duration, args.connections) for t in targets]
    info["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    text = report(rows, results, args, tool, info)
    print(text)
    if not args.no_write:
        write_results(text)
        print(f"recorded in {RESULTS.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
