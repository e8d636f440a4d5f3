"""SQLite writes: the service against FastAPI's floor on SQLite, 1 and N workers, side by side.

    .venv/bin/python bench/sqlite_workers.py                    # 1 and 4 workers, 3 rounds
    .venv/bin/python bench/sqlite_workers.py --workers 1 4 --rounds 3 --duration 10

Two variants, each on a fresh SQLite file migrated to head, with the same durability (WAL,
synchronous FULL, autocommit) and the same uvicorn options:

- service: `python supervisor.py --workers N` (the launcher migrates the file, then serves);
- floor: `bench/raw_aiosqlite_app.py` under uvicorn `--workers N`, the thinnest FastAPI app
  calling one aiosqlite connection per worker, SQLite's own busy handler (5 s) for waits.

Each round runs every (workers, variant) pair once, the variants in a rotated order; each run
warms up, then wrk (--latency) sends POST /users with a new email per request
(bench/wrk_post_user.lua) for --duration seconds. Printed per run and as medians over the
rounds: requests/s, p50, p99, max, non-2xx (a 503 means a writer gave up waiting), and the
service/floor ratio of requests/s per worker count.
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.api import parse_wrk
from bench.common import PROJECT_ROOT, BenchError

BENCH_DIR = Path(__file__).resolve().parent


def run_wrk(args: argparse.Namespace, port: int, seconds: float) -> tuple[str, str]:
    argv = [
        args.wrk,
        "-t1",
        f"-c{args.connections}",
        f"-d{seconds:g}s",
        "--latency",
        "-s",
        str(BENCH_DIR / "wrk_post_user.lua"),
        f"http://{common.HOST}:{port}/users",
        "--",
        uuid.uuid4().hex[:12],
    ]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if result.returncode != 0:
        raise BenchError(f"wrk failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout, result.stderr


def _max_ms(output: str) -> float:
    match = re.search(r"Latency\s+\S+\s+\S+\s+(\S+)", output)
    if not match:
        return float("nan")
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", match.group(1)).groups()  # type: ignore[union-attr]
    return float(number) * {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0}[unit]


VARIANTS = ("service", "floor")


def _argv(args: argparse.Namespace, variant: str, workers: int, port: int) -> list[str]:
    if variant == "service":
        argv = [common.PYTHON, str(args.project / "supervisor.py"), "--port", str(port)]
        argv += ["--workers", str(workers)]
        return [*argv, "--", *args.uvicorn_arg] if args.uvicorn_arg else argv
    from alembic_prestart.process.serve import uvicorn_argv

    return uvicorn_argv(
        python=common.PYTHON,
        app="bench.raw_aiosqlite_app:app",
        host=common.HOST,
        port=port,
        workers=workers,
        app_dir=PROJECT_ROOT,
        extra=args.uvicorn_arg,
    )


def measure(
    args: argparse.Namespace, variant: str, workers: int, database: Path
) -> dict[str, float]:
    url = f"sqlite:///{database}"
    if variant == "floor":  # the service's launcher migrates its own file as it starts
        common.alembic(args.project, url, "upgrade", "head")
    port = common.free_port()
    argv = _argv(args, variant, workers, port)
    env = common.server_environment(url)
    server = common.Server(f"{variant}, {workers} worker(s)", argv, port=port, env=env)
    try:
        common.wait_until_serving([server], timeout=60)
        if args.warmup > 0:
            run_wrk(args, port, args.warmup)
        output, _ = run_wrk(args, port, args.duration)
    finally:
        server.stop()
    result = parse_wrk(output)
    return {
        "req/s": result.requests_per_second,
        "p50": result.p50_ms,
        "p99": result.p99_ms,
        "max": _max_ms(output),
        "non-2xx": result.non_2xx,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4], help="(default: 1 4)")
    parser.add_argument("--rounds", type=int, default=3, help="(default: 3)")
    parser.add_argument("--duration", type=float, default=10.0, help="seconds (default: 10)")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds (default: 2)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (32)")
    parser.add_argument(
        "--uvicorn-arg", action="append", default=[], metavar="ARG", help="extra uvicorn argument"
    )
    parser.add_argument("--wrk", default=shutil.which("wrk"), help="the wrk binary (default: PATH)")
    parser.add_argument(
        "--project",
        type=Path,
        default=PROJECT_ROOT,
        help="the project to run (default: this one; e.g. an older release unpacked with "
        "`git archive REV | tar -x -C DIR`, to compare)",
    )
    args = parser.parse_args()
    if not args.wrk:
        parser.error("wrk not found on PATH (Debian: apt-get install wrk), or pass --wrk")
    print(common.machine_line("start"), flush=True)
    runs: dict[tuple[int, str], list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as directory:
        for round_number in range(args.rounds):
            for workers in args.workers:
                for variant in common.rotated(VARIANTS, round_number + workers):
                    database = Path(directory) / f"{variant}-{workers}-{round_number}.db"
                    figures = measure(args, variant, workers, database)
                    runs.setdefault((workers, variant), []).append(figures)
                    shown = ", ".join(f"{key} {value:,.2f}" for key, value in figures.items())
                    print(f"round {round_number + 1}: {variant}, {workers} worker(s): {shown}")
    print(common.machine_line("end"))
    print()

    def median(workers: int, variant: str, key: str) -> float:
        return statistics.median(run[key] for run in runs[workers, variant])

    rows = [
        [
            variant,
            workers,
            f"{median(workers, variant, 'req/s'):,.0f}",
            f"{median(workers, variant, 'p50'):.2f}",
            f"{median(workers, variant, 'p99'):.2f}",
            f"{max(run['max'] for run in runs[workers, variant]):.2f}",
            sum(int(run["non-2xx"]) for run in runs[workers, variant]),
        ]
        for workers in args.workers
        for variant in VARIANTS
    ]
    common.print_table(
        ["variant", "workers", "req/s", "p50 ms", "p99 ms", "max ms", "non-2xx"], rows
    )
    print()
    met = True
    for workers in args.workers:
        ratio = median(workers, "service", "req/s") / median(workers, "floor", "req/s")
        met &= ratio >= 0.95
        print(
            common.ratio_line(
                f"service/floor req/s, {workers} worker(s)",
                ratio,
                target=">= 0.95",
                met=ratio >= 0.95,
            )
        )
    errors = sum(
        int(run["non-2xx"]) for key, kept in runs.items() if key[1] == "service" for run in kept
    )
    return 0 if met and not errors else 1


if __name__ == "__main__":
    common.run_main(main)
