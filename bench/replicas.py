"""Replicas: eight launchers started at once on an empty database, against one alone.

    .venv/bin/python bench/replicas.py                  # 5 rounds, 8 launchers
    .venv/bin/python bench/replicas.py --rounds 9 --launchers 4

Each scenario gets a fresh, empty PostgreSQL database (created outside the timing), then
`python supervisor.py --port P_i` is launched once ("one") or --launchers times in a row
("many"), and the clock runs from the first launch until every launcher's uvicorn answers
/healthz with 200. With many, one launcher migrates under the advisory lock while the others
wait for it, find the schema at head, and exec uvicorn; all of them then start uvicorn on the
same two cores. Rounds are interleaved and alternate which scenario goes first; the median over
rounds is reported with min and max, and the ratio many/one.

Also measured, as the floor: the same number of bare uvicorns on a database migrated
beforehand (no launcher, no migration), which shows what start-up CPU alone costs here.

Target: many/one <= 2.
"""

from __future__ import annotations

import statistics
import sys
from pathlib import Path

# Runnable as `python bench/replicas.py` from any directory, like supervisor.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import PROJECT_ROOT, BenchError

TARGET_RATIO = 2.0


def run_scenario(
    admin_url: str, launchers: int, timeout: float, *, bare: bool = False
) -> tuple[float, list[float]]:
    """Seconds until all `launchers` serve (from the first launch), and each one's own time.

    With `bare`, plain uvicorns on a database migrated beforehand: the floor that start-up CPU
    alone sets on this machine, with no launcher and no migration at all."""
    with common.throwaway_database(admin_url, f"replicas{launchers}") as url:
        env = common.server_environment(url)
        if bare:
            common.alembic(PROJECT_ROOT, url, "upgrade", "head")
        ports = common.free_ports(launchers)
        servers: list[common.Server] = []
        try:
            for index, port in enumerate(ports):
                argv = (
                    common.uvicorn_argv("service.main:app", PROJECT_ROOT, port)
                    if bare
                    else common.supervisor_argv(PROJECT_ROOT, port)
                )
                servers.append(
                    common.Server(f"server {index + 1} of {launchers}", argv, port=port, env=env)
                )
            own = common.wait_until_serving(servers, timeout)
        finally:
            common.stop_all(servers)
        first_launch = servers[0].started
        # Each server's time is from its own launch; all of them counted from the first one.
        everyone = max(
            seconds + server.started - first_launch
            for seconds, server in zip(own, servers, strict=True)
        )
        if common.versions(url) != [common.code_head(PROJECT_ROOT)]:
            raise BenchError(f"after {launchers} launchers the schema is not at head")
    return everyone, own


def main() -> int:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=5, help="rounds (default: 5)")
    parser.add_argument(
        "--launchers", type=int, default=8, help="launchers started at once (default: 8)"
    )
    parser.add_argument(
        "--timeout", type=float, default=120.0, help="seconds a scenario may take (default: 120)"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.launchers < 2:
        parser.error("--rounds must be at least 1 and --launchers at least 2")
    print(common.machine_line("start"), flush=True)
    scenarios = [(1, False), (args.launchers, False), (1, True), (args.launchers, True)]
    totals: dict[tuple[int, bool], list[float]] = {scenario: [] for scenario in scenarios}
    for number in range(args.rounds):
        line = []
        for count, bare in common.rotated(scenarios, number):
            everyone, own = run_scenario(args.admin_url, count, args.timeout, bare=bare)
            totals[(count, bare)].append(everyone)
            kind = "bare uvicorn" if bare else "launcher"
            line.append(
                f"{count} {kind}{'s' if count > 1 else ''}: {everyone * 1000:.0f} ms"
                + (f" (each {min(own) * 1000:.0f}..{max(own) * 1000:.0f})" if count > 1 else "")
            )
        print(f"round {number + 1}: " + ", ".join(line), flush=True)

    print(common.machine_line("end"))
    print()
    rows = []
    for count, bare in scenarios:
        median, low, high = common.summary(totals[(count, bare)])
        kind = "bare uvicorn (at head)" if bare else "launcher"
        name = f"one {kind}" if count == 1 else f"{count} x {kind} at once"
        samples = totals[(count, bare)]
        rows.append([name, len(samples)] + [f"{v * 1000:.0f}" for v in (median, low, high)])
    common.print_table(
        ["fresh database, until all serve", "runs", "median ms", "min ms", "max ms"], rows
    )

    def ratio(bare: bool) -> float:
        many = statistics.median(totals[(args.launchers, bare)])
        return many / statistics.median(totals[(1, bare)])

    print()
    print(
        common.ratio_line(
            f"{args.launchers} launchers at once / one alone",
            ratio(False),
            target=f"<= {TARGET_RATIO:g}",
            met=ratio(False) <= TARGET_RATIO,
        )
    )
    print(f"floor: {args.launchers} bare uvicorns at once / one alone  {ratio(True):.3f}")
    return 0


if __name__ == "__main__":
    common.run_main(main)
