"""API throughput and latency: the service against FastAPI's floor and the ORM way, under wrk.

    .venv/bin/python bench/api.py                       # 1 round, 10 s per route, 32 connections
    .venv/bin/python bench/api.py --rounds 3 --duration 10 --uvicorn-arg=--no-access-log

On a throwaway database migrated to head and seeded with --users users, it starts, one at a
time and with the same uvicorn options (127.0.0.1, 1 worker, uvloop and httptools as uvicorn
picks them):
  service  python supervisor.py --port P [-- UVICORN_ARGS]   (migration check, exec uvicorn;
           metrics on, as by default: GET /metrics, every request counted and timed)
  bare     the same with METRICS_ENABLED=false
  raw      python -m uvicorn bench.raw_asyncpg_app:app ... [UVICORN_ARGS]  (FastAPI + asyncpg)
  orm      python -m uvicorn bench.orm_app:app ... [UVICORN_ARGS]  (FastAPI + SQLAlchemy ORM)
and for each it runs wrk (--latency) first for --warmup seconds on each route, unmeasured, then
for --duration seconds on GET /users/{id} (random seeded ids, bench/wrk_get_user.lua) and on
POST /users (a new email every request, bench/wrk_post_user.lua). Rounds rotate which server
goes first (interleaved: every round measures all four). Printed: requests/s, p50 and p99 per
run, the medians over rounds, and the ratios service/raw, bare/raw, service/bare and
service/orm. Any non-2xx response is reported, and makes the exit status 1; so does a
/metrics of the service that did not count every request wrk made.

Targets: service (metrics on) >= 0.95x raw requests/s on both routes and p99 <= 1.2x raw;
service >= 3x the ORM version's requests/s.
wrk must be on PATH (Debian: apt-get install wrk).
"""

from __future__ import annotations

import argparse
import http.client
import re
import shutil
import statistics
import subprocess
import sys
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

# Runnable as `python bench/api.py` from any directory, like supervisor.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import PROJECT_ROOT, BenchError

BENCH_DIR = Path(__file__).resolve().parent
TARGET_THROUGHPUT = 0.95  # service/raw requests/s, at least
TARGET_P99 = 1.2  # service/raw p99 latency, at most
TARGET_OVER_ORM = 3.0  # service/orm requests/s, at least


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    argv: Callable[[int, Sequence[str]], list[str]]
    env: tuple[tuple[str, str], ...] = ()


VARIANTS = (
    Variant(
        "service",
        "service, metrics on",
        lambda port, extra: common.supervisor_argv(PROJECT_ROOT, port, extra),
        (("METRICS_ENABLED", "true"),),
    ),
    Variant(
        "bare",
        "service, metrics off",
        lambda port, extra: common.supervisor_argv(PROJECT_ROOT, port, extra),
        (("METRICS_ENABLED", "false"),),
    ),
    Variant(
        "raw",
        "FastAPI + asyncpg (floor)",
        lambda port, extra: common.uvicorn_argv(
            "bench.raw_asyncpg_app:app", PROJECT_ROOT, port, extra
        ),
    ),
    Variant(
        "orm",
        "FastAPI + SQLAlchemy ORM",
        lambda port, extra: common.uvicorn_argv("bench.orm_app:app", PROJECT_ROOT, port, extra),
    ),
)
ROUTES = ("GET /users/{id}", "POST /users")


@dataclass(frozen=True)
class WrkResult:
    requests_per_second: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: str  # "" when wrk reported none


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def _milliseconds(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNIT_MS[unit]


def parse_wrk(output: str) -> WrkResult:
    """The figures out of wrk's --latency report."""

    def find(pattern: str) -> re.Match[str] | None:
        return re.search(pattern, output, re.MULTILINE)

    rate = find(r"^Requests/sec:\s+([\d.]+)")
    p50 = find(r"^\s+50%\s+(\S+)")
    p99 = find(r"^\s+99%\s+(\S+)")
    total = find(r"^\s+(\d+) requests in ")
    if not (rate and p50 and p99 and total):
        raise BenchError(f"cannot read wrk's output:\n{output}")
    non_2xx = find(r"Non-2xx or 3xx responses:\s+(\d+)")
    errors = find(r"Socket errors:\s+(.+)$")
    return WrkResult(
        requests_per_second=float(rate.group(1)),
        p50_ms=_milliseconds(p50.group(1)),
        p99_ms=_milliseconds(p99.group(1)),
        requests=int(total.group(1)),
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=errors.group(1).strip() if errors else "",
    )


def run_wrk(
    args: argparse.Namespace, port: int, route: str, seconds: float, users: tuple[int, int]
) -> WrkResult:
    if route.startswith("GET"):
        script, script_args = "wrk_get_user.lua", [str(users[0]), str(users[1])]
    else:
        # A tag unique to this wrk run keeps emails unique across runs and rounds.
        script, script_args = "wrk_post_user.lua", [uuid.uuid4().hex[:12]]
    path = "/users/1" if route.startswith("GET") else "/users"
    argv = [
        args.wrk,
        f"-t{args.threads}",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(BENCH_DIR / script),
        f"http://{common.HOST}:{port}{path}",
        "--",
        *script_args,
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return parse_wrk(result.stdout)


async def _seed(url: str, count: int) -> tuple[int, int]:
    import asyncpg

    connection = await asyncpg.connect(common.asyncpg_dsn(url))
    try:
        await connection.copy_records_to_table(
            "users",
            schema_name="test_app",
            columns=["name", "email"],
            records=[(f"seed {i}", f"seed-{i}@bench.example.com") for i in range(count)],
        )
        await connection.execute("ANALYZE test_app.users")
        first, last = await connection.fetchrow("SELECT min(id), max(id) FROM test_app.users")
    finally:
        await connection.close()
    if last - first + 1 != count:
        raise BenchError(f"seeded ids are not contiguous ({first}..{last} for {count} users)")
    return first, last


def seed_users(url: str, count: int) -> tuple[int, int]:
    """Insert `count` users in one COPY; return the first and last id (contiguous)."""
    import asyncio

    return asyncio.run(_seed(url, count))


def measure_server(
    args: argparse.Namespace, variant: Variant, url: str, users: tuple[int, int]
) -> list[WrkResult]:
    """Start one server, warm it up on both routes, measure both routes, stop it."""
    port = common.free_port()
    server = common.Server(
        variant.label,
        variant.argv(port, args.uvicorn_arg),
        port=port,
        env={**common.server_environment(url), **dict(variant.env)},
    )
    try:
        common.wait_until_serving([server], timeout=60)
        if args.warmup > 0:
            # Unmeasured: opens the pooled connections and fills the statement caches.
            for route in ROUTES:
                run_wrk(args, port, route, args.warmup, users)
        runs = [run_wrk(args, port, route, args.duration, users) for route in ROUTES]
        if variant.key == "service":
            check_counted(port, runs)
        return runs
    finally:
        server.stop()


def check_counted(port: int, runs: list[WrkResult]) -> None:
    """The service's /metrics counted every request wrk made on both routes (warm-up and
    /healthz polls aside, which only add): the figures are those of metrics at work."""
    from prometheus_client.parser import text_string_to_metric_families

    connection = http.client.HTTPConnection(common.HOST, port, timeout=10)
    try:
        connection.request("GET", "/metrics")
        text = connection.getresponse().read().decode()
    finally:
        connection.close()
    counted = {
        (sample.labels["method"], sample.labels["route"]): sample.value
        for family in text_string_to_metric_families(text)
        if family.name == "http_requests"
        for sample in family.samples
        if sample.name == "http_requests_total"
    }
    for route, run in zip(ROUTES, runs, strict=True):
        method, _, path = route.partition(" ")
        template = path.replace("{id}", "{user_id}")
        found = sum(v for (m, r), v in counted.items() if (m, r) == (method, template))
        if found < run.requests:
            raise BenchError(f"/metrics counted {found:.0f} {route}, wrk made {run.requests}")


def report(results: dict[tuple[str, str], list[WrkResult]]) -> bool:
    """Print the per-run table, the medians and the ratios; True if any response was not 2xx."""
    rows = []
    for (key, route), runs in results.items():
        label = next(v.label for v in VARIANTS if v.key == key)
        for number, run in enumerate(runs, 1):
            rows.append(
                [
                    label,
                    route,
                    number,
                    f"{run.requests_per_second:.0f}",
                    f"{run.p50_ms:.2f}",
                    f"{run.p99_ms:.2f}",
                    run.requests,
                    run.non_2xx,
                    run.socket_errors or "-",
                ]
            )
    print()
    common.print_table(
        ["server", "route", "round", "req/s", "p50 ms", "p99 ms", "requests", "non-2xx", "errors"],
        rows,
        left=2,
    )

    def median(key: str, route: str, field: str) -> float:
        return statistics.median(getattr(run, field) for run in results[(key, route)])

    print()
    rows = []
    for route in ROUTES:
        for field, unit in (
            ("requests_per_second", "req/s"),
            ("p50_ms", "p50 ms"),
            ("p99_ms", "p99 ms"),
        ):
            service, bare = median("service", route, field), median("bare", route, field)
            raw, orm = median("raw", route, field), median("orm", route, field)
            rows.append(
                [
                    f"{route}  {unit}",
                    f"{service:.2f}",
                    f"{bare:.2f}",
                    f"{raw:.2f}",
                    f"{orm:.2f}",
                    f"{service / raw:.3f}",
                    f"{bare / raw:.3f}",
                    f"{service / bare:.3f}",
                    f"{service / orm:.3f}",
                ]
            )
    common.print_table(
        [
            "median over rounds",
            "service",
            "bare",
            "raw",
            "orm",
            "service/raw",
            "bare/raw",
            "service/bare",
            "service/orm",
        ],
        rows,
    )
    print("(service: metrics on; bare: the same with METRICS_ENABLED=false)")
    print()
    for route in ROUTES:
        for key in ("service", "bare"):
            throughput = median(key, route, "requests_per_second") / median(
                "raw", route, "requests_per_second"
            )
            p99 = median(key, route, "p99_ms") / median("raw", route, "p99_ms")
            print(
                common.ratio_line(
                    f"{route} req/s {key}/raw",
                    throughput,
                    target=f">= {TARGET_THROUGHPUT}",
                    met=throughput >= TARGET_THROUGHPUT,
                )
            )
            print(
                common.ratio_line(
                    f"{route} p99 {key}/raw", p99, target=f"<= {TARGET_P99}", met=p99 <= TARGET_P99
                )
            )
        over_orm = median("service", route, "requests_per_second") / median(
            "orm", route, "requests_per_second"
        )
        print(
            common.ratio_line(
                f"{route} req/s service/orm",
                over_orm,
                target=f">= {TARGET_OVER_ORM}",
                met=over_orm >= TARGET_OVER_ORM,
            )
        )
    bad = sum(run.non_2xx for runs in results.values() for run in runs)
    if bad:
        print(f"\nWARNING: {bad} non-2xx responses in the measured runs: the figures are suspect")
    return bad > 0


def main() -> int:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=1, help="rounds (default: 1)")
    parser.add_argument(
        "--duration", type=float, default=10.0, help="seconds per measured wrk run (default: 10)"
    )
    parser.add_argument(
        "--warmup", type=float, default=3.0, help="seconds of unmeasured wrk per route (default: 3)"
    )
    parser.add_argument("--threads", type=int, default=1, help="wrk threads (default: 1)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default: 32)")
    parser.add_argument("--users", type=int, default=1000, help="users seeded (default: 1000)")
    parser.add_argument(
        "--uvicorn-arg",
        action="append",
        default=[],
        metavar="ARG",
        help="extra uvicorn argument for both servers, repeatable; write it with '=', "
        "e.g. --uvicorn-arg=--no-access-log",
    )
    parser.add_argument("--wrk", default=shutil.which("wrk"), help="the wrk binary (default: PATH)")
    args = parser.parse_args()
    if not args.wrk:
        parser.error("wrk not found on PATH (Debian: apt-get install wrk), or pass --wrk")
    if args.rounds < 1 or args.users < 1:
        parser.error("--rounds and --users must be at least 1")

    print(common.machine_line("start"), flush=True)
    results: dict[tuple[str, str], list[WrkResult]] = {
        (variant.key, route): [] for variant in VARIANTS for route in ROUTES
    }
    with common.throwaway_database(args.admin_url, "api") as url:
        common.alembic(PROJECT_ROOT, url, "upgrade", "head")
        users = seed_users(url, args.users)
        for number in range(args.rounds):
            for variant in common.rotated(VARIANTS, number):
                runs = measure_server(args, variant, url, users)
                for route, run in zip(ROUTES, runs, strict=True):
                    results[(variant.key, route)].append(run)
                    print(
                        f"round {number + 1}  {variant.label:<24} {route:<16} "
                        f"{run.requests_per_second:8.0f} req/s  p50 {run.p50_ms:6.2f} ms  "
                        f"p99 {run.p99_ms:6.2f} ms",
                        flush=True,
                    )
    print(common.machine_line("end"))
    return 1 if report(results) else 0


if __name__ == "__main__":
    common.run_main(main)
