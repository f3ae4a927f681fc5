"""Where a request's time goes: the production app, in process (no HTTP server), on PostgreSQL,
under pyinstrument, for one case at a time; prints the call tree and the CPU per request.

    .venv/bin/python bench/http/hotspots.py "token (authorization_code)" [--requests 2000]

Uses (and empties) the benchmark's database, like run.py. Needs pyinstrument (pip install
pyinstrument); the HTTP server's own cost is not in this picture, only the application's.
"""

from __future__ import annotations

import argparse
import collections
import cProfile
import io
import pstats
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from flask import Flask  # noqa: E402
from pyinstrument import Profiler  # noqa: E402
from werkzeug.test import EnvironBuilder  # noqa: E402

from bench.http.prepare import prepare_fixture  # noqa: E402
from bench.http.run import CASES, fresh_database  # noqa: E402
from idp.app import create_app  # noqa: E402
from tests.production.nodes import production_environment  # noqa: E402


def environ_for(case_name: str, item: str) -> dict[str, Any]:
    case = next(case for case in CASES if case.name == case_name)
    headers, body = {}, None
    if case.mode == "body":
        body = item
    elif case.mode == "bearer":
        headers["Authorization"] = f"Bearer {item}"
    elif case.mode == "basic-body":
        headers["Authorization"], body = item.split("\t", 1)
    content_type = "application/x-www-form-urlencoded" if case.method == "POST" else None
    builder = EnvironBuilder(path=case.path, method=case.method, headers=headers, data=body,
                             content_type=content_type)
    return builder.get_environ()


def call(app: Flask, environ: dict[str, Any]) -> str:
    status: list[str] = []
    body = app(environ, lambda s, _h, _e=None: status.append(s))
    b"".join(body)
    getattr(body, "close", lambda: None)()
    return status[0]


def wall_profile(app: Flask, environs: list[dict[str, Any]]) -> tuple[list[str], str]:
    profiler = Profiler(interval=0.0005)
    with profiler:
        statuses = [call(app, environ) for environ in environs]
    return statuses, profiler.output_text(unicode=True, color=False, show_all=False)


def cpu_profile(app: Flask, environs: list[dict[str, Any]]) -> tuple[list[str], str]:
    """CPU time only (waiting for PostgreSQL excluded): by package, then the costliest functions."""
    profiler = cProfile.Profile(time.process_time)
    profiler.enable()
    statuses = [call(app, environ) for environ in environs]
    profiler.disable()
    stats = pstats.Stats(profiler)
    by_package: dict[str, float] = collections.Counter()
    for (filename, _line, _name), (_calls, _prim, own, _cum, _callers) in stats.stats.items():  # type: ignore[attr-defined]
        by_package[_package(filename)] += own
    total = sum(by_package.values())
    lines = [f"CPU by package ({1000 * total / len(environs):.3f} ms per request, profiler included):"]
    lines += [f"  {share / total:6.1%}  {name}" for name, share in sorted(by_package.items(), key=lambda i: -i[1])[:14]]
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(20)
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(r"/(idp|consent|keys)/", 30)
    return statuses, "\n".join(lines) + "\n" + out.getvalue()


def _package(filename: str) -> str:
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1].split("/", 1)[0]
    if "/work/" in filename or filename.startswith(str(Path(__file__).resolve().parents[2])):
        parts = Path(filename).parts
        for root in ("idp", "consent", "keys"):
            if root in parts:
                return f"{root}/ (ours)"
    return "python stdlib" if "/lib/python3" in filename else filename.split("/")[-1] or "builtins"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("case", choices=[case.name for case in CASES])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--cpu", action="store_true", help="cProfile on CPU time instead of pyinstrument's wall clock")
    parser.add_argument("--plain", action="store_true", help="no profiler: just the CPU and wall time per request")
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_http")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="idp-profile-"))
    fresh_database(args.database_url)
    env = production_environment(issuer="https://idp.bench.test", database_url=args.database_url,
                                 instance=folder, IDP_CODE_TTL="3600", IDP_CLIENT_ASSERTION_MAX_AGE="3600",
                                 IDP_LOG_LEVEL="WARNING")  # items are made before a slow, profiled run
    fixture = prepare_fixture(env)
    items = fixture.items(args.case, folder / "items.txt", args.requests + 200).read_text().splitlines() or [""]
    environs = [environ_for(args.case, items[index % len(items)]) for index in range(args.requests + 200)]
    app = create_app(fixture.settings)
    for environ in environs[:200]:  # warm: caches, pools, imports
        assert call(app, environ).startswith("200"), call(app, environ)
    started_cpu, started = time.process_time(), time.perf_counter()
    if args.plain:
        statuses, report = [call(app, environ) for environ in environs[200:]], "(no profiler)"
    elif args.cpu:
        statuses, report = cpu_profile(app, environs[200:])
    else:
        statuses, report = wall_profile(app, environs[200:])
    cpu, wall = time.process_time() - started_cpu, time.perf_counter() - started
    assert all(status.startswith("200") for status in statuses), set(statuses)
    print(report)
    print(f"{args.case}: {args.requests} requests, {1000 * cpu / args.requests:.3f} ms CPU and "
          f"{1000 * wall / args.requests:.3f} ms wall per request (profiler overhead included)")
    fixture.close()
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
