"""HTTP benchmark of a production node: gunicorn (``idp/gunicorn_conf.py``) on PostgreSQL, driven
by wrk for a fixed time per case; prints requests/s and p50/p99 latency (median of the runs).

    .venv/bin/python bench/http/run.py [--runs 3] [--duration 10] [--connections 32] [--floor]

``--floor`` also measures the stack's floor on this machine (``floor.py``): the same gunicorn
settings serving only the irreducible work of each case, so the figures can be read against
what the machine and the chosen libraries allow at all.

Needs ``wrk`` (Debian: ``apt-get install wrk``) and a PostgreSQL server; the database named by
``--database-url`` is emptied and migrated. Single-use items (codes, refresh tokens, client
assertions) are prepared before each run, outside the measured time (see ``prepare.py``).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests
from sqlalchemy import make_url, text

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from bench.http.prepare import Fixture, prepare_fixture  # noqa: E402
from store.db import make_engine  # noqa: E402
from store.migrate import upgrade  # noqa: E402
from tests.production.nodes import Node, free_port, process_environment, production_environment  # noqa: E402

HERE = Path(__file__).resolve().parent
TARGETS = {"discovery": (5000, 50), "jwks": (5000, 50), "userinfo": (2000, 50), "introspection": (2000, 50),
           "token (authorization_code)": (800, 50), "token (refresh_token)": (800, 50)}


@dataclasses.dataclass(frozen=True)
class Case:
    name: str
    method: str
    path: str
    mode: str  # see requests.lua
    single_use: bool = False


FLOOR_CASES = (  # the target each floor bounds: the case it is the irreducible part of
    (Case("floor: bare WSGI (gunicorn alone)", "GET", "/wsgi", "none"), (5000, 50)),
    (Case("floor: Flask, fixed bytes (Flask's own cost)", "GET", "/flask", "none"), (5000, 50)),
    (Case("floor: Flask + ES256 verify + 1 SELECT (bounds userinfo, introspection)", "GET", "/verify+select",
          "none"), (2000, 50)),
    (Case("floor: Flask + 1 verify + 2 signs + 12 statements (bounds the token grants)", "GET", "/token-work",
          "none"), (800, 50)),
)
TARGETS |= {case.name: target for case, target in FLOOR_CASES}
# Discovery and the JWKS are answered in front of Flask (idp/fastpath.py): bare WSGI is their floor.
_BARE, _READ, _TOKEN = (FLOOR_CASES[i][0].name for i in (0, 2, 3))
FLOOR_OF = {"discovery": _BARE, "jwks": _BARE, "userinfo": _READ, "introspection": _READ,
            "token (authorization_code)": _TOKEN, "token (refresh_token)": _TOKEN}

CASES = (
    Case("discovery", "GET", "/.well-known/openid-configuration", "none"),
    Case("jwks", "GET", "/jwks.json", "none"),
    Case("token (authorization_code)", "POST", "/token", "body", single_use=True),
    Case("token (refresh_token)", "POST", "/token", "body", single_use=True),
    Case("userinfo", "GET", "/userinfo", "bearer"),
    Case("introspection", "POST", "/introspect", "basic-body"),
)


@dataclasses.dataclass
class Result:
    rate: float
    p50_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    cpu_ms: dict[str, float] = dataclasses.field(default_factory=dict)  # per request: app, postgres, wrk

    @property
    def alone_rate(self) -> float:
        """What the machine's cores would serve if nothing else ran: cores / CPU per request."""
        return (os.cpu_count() or 1) * 1000 / sum(self.cpu_ms.values())


def _cpu_seconds(pid: int) -> float:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _process_tree(root: int) -> list[int]:
    found, queue = [], [root]
    while queue:
        pid = queue.pop()
        found.append(pid)
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            queue.extend(int(child) for child in task.read_text().split())
    return found


def _postgres_backends(database: str) -> list[int]:
    """Server processes of this database (their title names it), not other people's."""
    found = []
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            title = cmdline.read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        if title.startswith("postgres: ") and f" {database} " in title:
            found.append(int(cmdline.parent.name))
    return found


def cpu_snapshot(node: Node, database: str) -> dict[str, dict[int, float]]:
    assert node.process is not None
    return {"app": {pid: _cpu_seconds(pid) for pid in _process_tree(node.process.pid)},
            "postgres": {pid: _cpu_seconds(pid) for pid in _postgres_backends(database)}}


def cpu_used(before: dict[str, dict[int, float]], after: dict[str, dict[int, float]]) -> dict[str, float]:
    return {part: sum(now - before[part].get(pid, 0.0) for pid, now in after[part].items()) for part in after}


class FloorNode(Node):
    """``floor.py`` under gunicorn with the production worker settings (``idp/gunicorn_conf.py``)."""

    def start(self, *extra_args: str) -> Node:
        command = [sys.executable, "-m", "gunicorn", "--worker-class", "gthread", "--keep-alive", "75",
                   "--bind", f"127.0.0.1:{self.port}", "--workers", str(self.workers), "--threads", str(self.threads),
                   *extra_args, "bench.http.floor:app"]
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(command, cwd=HERE.parents[1], env=process_environment(self.env),
                                            stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        self.wait_until_ready()
        return self


def fresh_database(url: str) -> None:
    server = make_url(url).set(database="postgres")
    engine = make_engine(server.render_as_string(hide_password=False), isolation_level="AUTOCOMMIT")
    with engine.connect() as connection:
        name = make_url(url).database
        if not connection.scalar(text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
            connection.execute(text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    engine = make_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()
    upgrade(url)


def wrk(case: Case, node: Node, items: Path, args: argparse.Namespace, duration: float) -> Result:
    command = ["wrk", f"-t{args.wrk_threads}", f"-c{args.connections}", f"-d{int(duration)}s", "--timeout", "10s",
               "-s", str(HERE / "requests.lua"), node.url, "--", str(items), case.method, case.path, case.mode,
               str(args.wrk_threads)]
    database = make_url(args.database_url).database or ""
    before, wrk_before = cpu_snapshot(node, database), resource.getrusage(resource.RUSAGE_CHILDREN)
    output = subprocess.run(command, capture_output=True, text=True, check=True, timeout=duration + 60).stdout
    used, wrk_after = cpu_used(before, cpu_snapshot(node, database)), resource.getrusage(resource.RUSAGE_CHILDREN)
    used["wrk"] = (wrk_after.ru_utime + wrk_after.ru_stime) - (wrk_before.ru_utime + wrk_before.ru_stime)
    summary = json.loads(output.strip().splitlines()[-1])
    seconds, count = summary["duration_us"] / 1e6, max(summary["requests"], 1)
    return Result(rate=summary["requests"] / seconds, p50_ms=summary["p50_us"] / 1000,
                  p99_ms=summary["p99_us"] / 1000, non_2xx=summary["non_2xx"], socket_errors=summary["socket_errors"],
                  cpu_ms={part: 1000 * value / count for part, value in used.items()})


def run_rounds(plan: list[tuple[Case, Node]], fixture: Fixture, args: argparse.Namespace,
               folder: Path) -> dict[str, list[Result]]:
    """Round by round, every case once per round, so that a slow spell of a shared machine
    falls on all the cases of a round alike rather than on a few cases' runs."""
    results: dict[str, list[Result]] = {case.name: [] for case, _node in plan}
    for run in range(args.runs + 1):  # round 0 warms every node and case up and is not counted
        duration = args.warmup if run == 0 else args.duration
        for case, node in plan:
            items = fixture.items(case.name, folder / f"{case.name}-{run}.txt", int(args.max_rate * duration))
            result = wrk(case, node, items, args, duration)
            if run:
                results[case.name].append(result)
                cpu = " / ".join(f"{part} {value:.3f}" for part, value in result.cpu_ms.items())
                print(f"  round {run}: {case.name}: {result.rate:8.0f} req/s  p50 {result.p50_ms:6.2f} ms  "
                      f"p99 {result.p99_ms:6.2f} ms  non-2xx {result.non_2xx}  CPU ms/request: {cpu}  "
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
    return results


def table(all_results: dict[str, list[Result]], args: argparse.Namespace) -> str:
    lines = [f"median of {args.runs} runs × {args.duration:g} s, {args.connections} connections, "
             f"gunicorn {args.workers} workers × {args.threads} threads, wrk {args.wrk_threads} thread(s)",
             "| case | req/s | p50 ms | p99 ms | non-2xx | CPU ms/req: app + PostgreSQL + wrk | req/s if alone "
             f"on {os.cpu_count()} cores | CPU × its floor | target (a floor: the target it bounds) |",
             "| --- | ---: | ---: | ---: | ---: | --- | ---: | ---: | --- |"]
    for name, results in all_results.items():
        rate = statistics.median(r.rate for r in results)
        p50 = statistics.median(r.p50_ms for r in results)
        p99 = statistics.median(r.p99_ms for r in results)
        errors = sum(r.non_2xx + r.socket_errors for r in results)
        want_rate, want_p99 = TARGETS[name]
        verdict = "met" if rate >= want_rate and p99 < want_p99 else "MISSED"
        cpu = {part: statistics.median(r.cpu_ms[part] for r in results) for part in results[0].cpu_ms}
        alone = statistics.median(r.alone_rate for r in results)
        lines.append(f"| {name} | {rate:,.0f} | {p50:.2f} | {p99:.2f} | {errors} | "
                     f"{cpu['app']:.3f} + {cpu['postgres']:.3f} + {cpu['wrk']:.3f} | {alone:,.0f} | "
                     f"{_times_floor(name, all_results)} | ≥ {want_rate:,} req/s, p99 < {want_p99} ms: {verdict} |")
    return "\n".join(lines)


def _times_floor(name: str, all_results: dict[str, list[Result]]) -> str:
    """The case's CPU per request over its floor's, round by round (the same minutes), median."""
    floor = all_results.get(FLOOR_OF.get(name, ""))
    if not floor:
        return "—"
    ratios = [(case.cpu_ms["app"] + case.cpu_ms["postgres"]) / (bound.cpu_ms["app"] + bound.cpu_ms["postgres"])
              for case, bound in zip(all_results[name], floor, strict=True)]
    return f"{statistics.median(ratios):.1f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--database-url", default="postgresql+psycopg://postgres@127.0.0.1:5432/bench_http")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2 * (os.cpu_count() or 1))  # as idp/gunicorn_conf.py
    parser.add_argument("--threads", type=int, default=4)  # as idp/gunicorn_conf.py
    parser.add_argument("--wrk-threads", type=int, default=1)
    parser.add_argument("--max-rate", type=float, default=4000, help="single-use items prepared per second of run")
    parser.add_argument("--cases", nargs="*", default=[case.name for case in CASES])
    parser.add_argument("--floor", action="store_true", help="also measure the stack's floor (floor.py)")
    args = parser.parse_args()
    if not shutil.which("wrk"):
        sys.exit("wrk is not installed: apt-get install wrk")

    folder = Path(tempfile.mkdtemp(prefix="idp-bench-"))
    fresh_database(args.database_url)
    env = production_environment(issuer="https://idp.bench.test", database_url=args.database_url,
                                 instance=folder, IDP_CODE_TTL="900")
    fixture = prepare_fixture(env)
    node = Node("bench", free_port(), env, folder / "node.log", workers=args.workers, threads=args.threads)
    floor = FloorNode("floor", free_port(), {"BENCH_FLOOR_DATABASE_URL": args.database_url},
                      folder / "floor.log", workers=args.workers, threads=args.threads)
    plan = [(case, node) for case in CASES if case.name in args.cases]
    plan += [(case, floor) for case, _target in FLOOR_CASES] if args.floor else []
    load = os.getloadavg()
    try:
        node.start()
        assert requests.get(f"{node.url}/readyz", timeout=5).status_code == 200
        if args.floor:
            floor.start()
        results = run_rounds(plan, fixture, args, folder)
    finally:
        node.stop()
        floor.stop()
        fixture.close()
    print(f"load average before/after: {load[0]:.1f} / {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(table(results, args))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    started = time.monotonic()
    main()
    print(f"({time.monotonic() - started:.0f} s)")
