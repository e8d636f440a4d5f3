"""SQLite writes under several uvicorn workers: POST /users latency and errors, 1 vs N workers.

    .venv/bin/python bench/sqlite_workers.py                    # 1 and 4 workers, 15 s each
    .venv/bin/python bench/sqlite_workers.py --workers 1 4 --duration 30

For each worker count it starts `python supervisor.py --workers N` on a fresh SQLite file (the
launcher migrates it), warms up, then runs wrk (--latency) on POST /users with a new email per
request (bench/wrk_post_user.lua) for --duration seconds. Printed: requests/s, p50, p99, max,
and the non-2xx answers (a 503 here means a writer gave up waiting for the lock).

Before the store's fair retry (service/store.py SqliteStore), 4 workers gave POST p99 4.4-4.7 s
and 1-3 answers of 503 per 30 s, where 1 worker had p99 60 ms on the same load.
"""

from __future__ import annotations

import argparse
import re
import shutil
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


def measure(args: argparse.Namespace, workers: int, directory: Path) -> list[object]:
    database = directory / f"workers-{workers}.db"
    port = common.free_port()
    env = common.server_environment(f"sqlite:///{database}")
    argv = [common.PYTHON, str(args.project / "supervisor.py"), "--port", str(port)]
    argv += ["--workers", str(workers)]
    if args.uvicorn_arg:
        argv += ["--", *args.uvicorn_arg]
    server = common.Server(f"{workers} worker(s)", argv, port=port, env=env, cwd=args.project)
    try:
        common.wait_until_serving([server], timeout=60)
        if args.warmup > 0:
            run_wrk(args, port, args.warmup)
        output, _ = run_wrk(args, port, args.duration)
    finally:
        server.stop()
    result = parse_wrk(output)
    return [
        workers,
        f"{result.requests_per_second:.0f}",
        f"{result.p50_ms:.2f}",
        f"{result.p99_ms:.2f}",
        f"{_max_ms(output):.2f}",
        result.requests,
        result.non_2xx,
    ]


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 4], help="(default: 1 4)")
    parser.add_argument("--duration", type=float, default=15.0, help="seconds (default: 15)")
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
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-sqlite-") as directory:
        for workers in args.workers:
            rows.append(measure(args, workers, Path(directory)))
            print(f"{workers} worker(s): {rows[-1]}", flush=True)
    print(common.machine_line("end"))
    print()
    common.print_table(
        ["workers", "req/s", "p50 ms", "p99 ms", "max ms", "requests", "non-2xx"], rows
    )
    return 1 if any(row[-1] for row in rows) else 0


if __name__ == "__main__":
    common.run_main(main)
