"""API cost per request in CPU instructions: the service against FastAPI's floor, under callgrind.

    .venv/bin/python bench/api_instructions.py                  # 1,000 requests per route
    .venv/bin/python bench/api_instructions.py --requests 3000

bench/api.py measures requests per second, which on a shared 2-CPU machine moves by 10-30%
between runs (the floor's own rate spans more than the 5% a target asks about). Instructions do
not move: valgrind's callgrind counts those the server process executes, whatever else the
machine is doing. So this runs the same servers as bench/api.py (the same uvicorn command line,
httptools, one worker, no access log; the service with metrics on, as by default, and off as
"bare"), each under `valgrind --tool=callgrind`, on a throwaway database migrated to head and
seeded with --users users, and for each route:
  - --warmup requests, unmeasured (they open the pool's connections, fill statement caches);
  - callgrind's counters zeroed (callgrind_control -z), then --requests requests over
    --connections keep-alive connections (GET /users/{id} on random seeded ids; POST /users
    with a new email each), then the counters dumped (callgrind_control -d);
and prints the instructions per request, and floor/service: the requests per second the
service would serve against the floor's on the same CPU, where the server is what is busy.
Everything the server process runs is counted: uvicorn's HTTP protocol, the app, asyncpg.
PostgreSQL and the client are other processes, not counted.

Targets (as bench/api.py's): floor/service >= 0.95 on both routes. valgrind must be on PATH
(Debian: apt-get install valgrind); a server under it starts in about 30 s.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

# Runnable as `python bench/api_instructions.py` from any directory, like supervisor.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.api import seed_users
from bench.common import PROJECT_ROOT, BenchError

TARGET = 0.95  # floor instructions / service instructions, at least
ROUTES = ("GET /users/{id}", "POST /users")
START_TIMEOUT_SECONDS = 300  # a server under valgrind runs 30-50 times slower


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    app: str
    env: tuple[tuple[str, str], ...] = ()


VARIANTS = (
    Variant("service", "service, metrics on", "service.main:app", (("METRICS_ENABLED", "true"),)),
    Variant("bare", "service, metrics off", "service.main:app", (("METRICS_ENABLED", "false"),)),
    Variant("floor", "FastAPI + asyncpg (floor)", "bench.raw_asyncpg_app:app"),
)


def request_bytes(route: str, users: tuple[int, int], tag: str, number: int) -> bytes:
    if route.startswith("GET"):
        user_id = random.randint(*users)
        return f"GET /users/{user_id} HTTP/1.1\r\nHost: bench\r\n\r\n".encode()
    body = json.dumps(
        {"name": f"bench user {number}", "email": f"{tag}-{number}@bench.example.com"}
    )
    return (
        "POST /users HTTP/1.1\r\nHost: bench\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\n\r\n{body}"
    ).encode()


async def _send(
    port: int, route: str, users: tuple[int, int], count: int, connections: int
) -> None:
    """`count` requests over `connections` keep-alive connections; every answer must be 2xx."""
    tag = uuid.uuid4().hex[:12]
    numbers = iter(range(count))
    failures: list[str] = []

    async def one_connection() -> None:
        reader, writer = await asyncio.open_connection(common.HOST, port)
        try:
            for number in numbers:  # shared: the connections take the next number in turn
                writer.write(request_bytes(route, users, tag, number))
                status_line = await reader.readline()
                length = 0
                while (line := await reader.readline()) not in (b"\r\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = await reader.readexactly(length)
                status = int(status_line.split()[1])
                if not 200 <= status < 300:
                    failures.append(f"{route}: {status} {body[:200]!r}")
        finally:
            writer.close()

    await asyncio.gather(*(one_connection() for _ in range(connections)))
    if failures:
        raise BenchError(f"{len(failures)} answers were not 2xx, the first: {failures[0]}")


def send(port: int, route: str, users: tuple[int, int], count: int, connections: int) -> None:
    asyncio.run(_send(port, route, users, count, connections))


def callgrind_control(option: str, pid: int) -> None:
    result = subprocess.run(
        ["callgrind_control", option, str(pid)], capture_output=True, text=True, timeout=120
    )
    if result.returncode != 0:
        raise BenchError(f"callgrind_control {option} failed:\n{result.stdout}{result.stderr}")


def instructions_of_dump(directory: Path, before: set[Path]) -> int:
    """The instruction count of the dump callgrind_control -d just wrote."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        new = set(directory.glob("callgrind.out*")) - before
        for path in new:
            for line in path.read_text(errors="replace").splitlines():
                if line.startswith("summary:"):
                    return int(line.split()[1])
        time.sleep(0.2)
    raise BenchError("callgrind wrote no dump")


def measure(
    args: argparse.Namespace, variant: Variant, url: str, users: tuple[int, int], work: Path
) -> dict[str, int]:
    """Instructions per request on each route, for one server under callgrind."""
    port = common.free_ports(1)[0]
    directory = work / variant.key
    directory.mkdir()
    uvicorn = common.uvicorn_argv(variant.app, PROJECT_ROOT, port, ["--no-access-log"])
    argv = [
        args.valgrind,
        "--tool=callgrind",
        f"--callgrind-out-file={directory}/callgrind.out",
        *uvicorn,
    ]
    server = common.Server(
        variant.label, argv, port=port, env={**common.server_environment(url), **dict(variant.env)}
    )
    try:
        common.wait_until_serving([server], timeout=START_TIMEOUT_SECONDS)
        per_request = {}
        for route in ROUTES:
            send(port, route, users, args.warmup, args.connections)
            callgrind_control("-z", server.process.pid)
            before = set(directory.glob("callgrind.out*"))
            send(port, route, users, args.requests, args.connections)
            callgrind_control("-d", server.process.pid)
            per_request[route] = instructions_of_dump(directory, before) // args.requests
        return per_request
    finally:
        server.stop()


def main() -> int:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--requests", type=int, default=1000, help="measured, per route")
    parser.add_argument("--warmup", type=int, default=200, help="unmeasured, per route")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--users", type=int, default=1000, help="seeded users")
    parser.add_argument("--valgrind", default=shutil.which("valgrind"), help="(default: PATH)")
    args = parser.parse_args()
    if not args.valgrind or not shutil.which("callgrind_control"):
        raise BenchError(
            "valgrind and callgrind_control must be on PATH (apt-get install valgrind)"
        )
    print(common.machine_line("start"), flush=True)
    results: dict[str, dict[str, int]] = {}
    with (
        common.throwaway_database(args.admin_url, "instructions") as url,
        tempfile.TemporaryDirectory(prefix="bench-callgrind-") as work,
    ):
        common.alembic(PROJECT_ROOT, url, "upgrade", "head")
        users = seed_users(url, args.users)
        for variant in VARIANTS:
            results[variant.key] = measure(args, variant, url, users, Path(work))
            print(f"{variant.label:<28} {results[variant.key]}", flush=True)
    print()
    headers = ["route", *(f"{v.key} instr/req" for v in VARIANTS), "floor/service", "floor/bare"]
    rows = []
    met = True
    for route in ROUTES:
        floor = results["floor"][route]
        ratios = [floor / results[key][route] for key in ("service", "bare")]
        met = met and ratios[0] >= TARGET
        rows.append(
            [
                route,
                *(f"{results[v.key][route]:,}" for v in VARIANTS),
                *(f"{r:.3f}" for r in ratios),
            ]
        )
    common.print_table(headers, rows)
    print(f"\nfloor/service >= {TARGET} on both routes: {'met' if met else 'MISSED'}")
    print(f"({args.requests} requests per route after {args.warmup} unmeasured, ", end="")
    print(f"{args.connections} connections)")
    print(common.machine_line("end"))
    return 0


if __name__ == "__main__":
    common.run_main(main)
