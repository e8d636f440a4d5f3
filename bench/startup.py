"""Start-up time: from launch to the first 200 on /healthz, launcher against the alternatives.

    .venv/bin/python bench/startup.py                 # 7 measured rounds after 1 warm-up round
    .venv/bin/python bench/startup.py --rounds 15 --admin-url postgresql://postgres@host/postgres

Variants, all on PostgreSQL with DATABASE_URL in the (identical) environment:
  (a)  uvicorn alone:             python -m uvicorn service.main:app ...        (database at head)
  (a') the launcher's uvicorn:    python -m alembic_prestart.process.uvicorn_main service.main:app
       ... (what the launcher execs, with its options: uvicorn's own command line, the
       collector off until the app is imported, the header limit; at head)
  (b)  shell chain:               sh -c 'alembic -c INI upgrade head && exec python -m uvicorn ...'
                                                                                (database at head)
  (c)  launcher, fast path:       python supervisor.py --port P                 (database at head)
  (b') shell chain, one pending revision
  (d)  launcher, one pending revision (the child runs it, the safety analysis on, in the child)
  (e)  the same with --lint off (no safety analysis)

(b') and (d) run from a copy of the project with one extra, trivial revision (a nullable column);
before each of their runs the database is recreated, outside the timing, from a template one
revision behind. The rounds are interleaved: each round runs every variant once, starting with
a different one each time, so drift on the machine spreads over all variants alike.

Beside them, in the same rounds, the floor of any launcher that checks the database through
asyncpg: (f) a bare interpreter that imports asyncpg and runs one query on the same database.

Targets: (c)/(a) <= 1.25 and (d)/(b') <= 1.10. (b') runs the same env.py, guard included.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

# Runnable as `python bench/startup.py` from any directory, like supervisor.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import PROJECT_ROOT, BenchError

BENCH_REVISION = "bench_pending"
TARGET_FAST_PATH = 1.25
TARGET_PENDING = 1.10


@dataclass(frozen=True)
class Variant:
    key: str
    label: str
    argv: Callable[[Path, int], list[str]]
    pending: bool  # runs from the project copy on a database one revision behind


VARIANTS = (
    Variant(
        "a",
        "(a)  uvicorn alone",
        lambda root, port: common.plain_uvicorn_argv("service.main:app", root, port),
        pending=False,
    ),
    Variant(
        "a'",
        "(a') the launcher's uvicorn, alone",
        lambda root, port: common.uvicorn_argv("service.main:app", root, port),
        pending=False,
    ),
    Variant("b", "(b)  sh: alembic && exec uvicorn", common.shell_chain_argv, pending=False),
    Variant("c", "(c)  supervisor.py, at head", common.supervisor_argv, pending=False),
    Variant("b'", "(b') sh chain, 1 pending", common.shell_chain_argv, pending=True),
    Variant("d", "(d)  supervisor.py, 1 pending", common.supervisor_argv, pending=True),
    Variant(
        "e",
        "(e)  supervisor.py --lint off, 1 pending",
        lambda root, port: [*common.supervisor_argv(root, port), "--lint", "off"],
        pending=True,
    ),
)


def write_pending_revision(root: Path, down_revision: str) -> None:
    """The cheapest real migration: one nullable column, no table rewrite."""
    path = root / "migrations" / "versions" / f"29991231_{BENCH_REVISION}.py"
    path.write_text(
        f'"""bench: one trivial pending revision"""\n\n'
        "import sqlalchemy as sa\n"
        "from alembic import op\n\n"
        f"revision = {BENCH_REVISION!r}\n"
        f"down_revision = {down_revision!r}\n"
        "branch_labels = None\n"
        "depends_on = None\n\n\n"
        "def upgrade() -> None:\n"
        '    op.add_column("users", sa.Column("bench_note", sa.Text(), nullable=True))\n\n\n'
        "def downgrade() -> None:\n"
        '    op.drop_column("users", "bench_note")\n'
    )


class Workspace:
    """The databases and the project copy every run needs, made once and removed at the end."""

    def __init__(self, admin_url: str, scratch: Path) -> None:
        self.admin_url = admin_url
        self.copy_root = common.project_copy(scratch / "project")
        write_pending_revision(self.copy_root, common.code_head(PROJECT_ROOT))
        self._names: list[str] = []

    def set_up(self) -> None:
        # The template sits at the real project's head, i.e. one revision behind the copy.
        self.template = self._create("template")
        common.alembic(PROJECT_ROOT, self._url(self.template), "upgrade", "head")
        self.head_db = self._create("head", template=self.template)
        self.pending_db = common.database_name("pending")
        self._names.append(self.pending_db)

    def _create(self, label: str, template: str | None = None) -> str:
        name = common.database_name(label)
        common.create_database(self.admin_url, name, template=template)
        self._names.append(name)
        return name

    def _url(self, name: str) -> str:
        return common.with_database(self.admin_url, name)

    def reset_pending(self) -> str:
        """A database exactly one revision behind the copy: recreated from the template."""
        common.drop_database(self.admin_url, self.pending_db)
        common.create_database(self.admin_url, self.pending_db, template=self.template)
        return self._url(self.pending_db)

    def url_for(self, variant: Variant) -> str:
        return self._url(self.pending_db if variant.pending else self.head_db)

    def close(self) -> None:
        for name in reversed(self._names):
            common.drop_database(self.admin_url, name)


def run_once(workspace: Workspace, variant: Variant, port: int, timeout: float) -> float:
    if variant.pending:
        workspace.reset_pending()  # outside the timing: the clock starts in Server()
    root = workspace.copy_root if variant.pending else PROJECT_ROOT
    url = workspace.url_for(variant)
    server = common.Server(
        variant.label.strip(),
        variant.argv(root, port),
        port=port,
        env=common.server_environment(url),
        cwd=root,
    )
    try:
        (seconds,) = common.wait_until_serving([server], timeout)
    finally:
        server.stop()
    if variant.pending and common.versions(url) != [BENCH_REVISION]:
        raise BenchError(f"{variant.label.strip()} served without applying {BENCH_REVISION}")
    return seconds


def report(samples: dict[str, list[float]]) -> None:
    rows = []
    for variant in VARIANTS:
        median, low, high = common.summary(samples[variant.key])
        rows.append(
            [variant.label, len(samples[variant.key])]
            + [f"{value * 1000:.0f}" for value in (median, low, high)]
        )
    print()
    common.print_table(["variant", "runs", "median ms", "min ms", "max ms"], rows)
    median = {key: common.summary(values)[0] for key, values in samples.items()}
    fast_path = median["c"] / median["a"]
    pending = median["d"] / median["b'"]
    print()
    print(
        common.ratio_line(
            "(c)/(a)  launcher fast path",
            fast_path,
            target=f"<= {TARGET_FAST_PATH}",
            met=fast_path <= TARGET_FAST_PATH,
        )
    )
    print(
        common.ratio_line(
            "(d)/(b') launcher, 1 pending",
            pending,
            target=f"<= {TARGET_PENDING}",
            met=pending <= TARGET_PENDING,
        )
    )
    # The same ratio paired within each round (the variants of a round run back to back), so
    # drift from one round to the next cancels: its spread shows what one round can say.
    paired = [c / a for c, a in zip(samples["c"], samples["a"], strict=True)]
    low, high = min(paired), max(paired)
    print(
        f"{'(c)/(a)  paired, round by round':<34} {statistics.median(paired):6.3f}   "
        f"median of {len(paired)}, from {low:.3f} to {high:.3f}"
    )
    over_own_uvicorn = median["c"] / median["a'"]
    label = "(c)/(a') over the launcher's uvicorn"
    print(f"{label:<34} {over_own_uvicorn:6.3f}   (what the launcher adds before its exec)")
    lint_off = median["e"] / median["b'"]
    label = "(e)/(b') launcher --lint off"
    print(f"{label:<34} {lint_off:6.3f}")
    print(f"{'(b)/(a)  shell chain at head':<34} {median['b'] / median['a']:6.3f}")
    print(
        f"(f) floor, interpreter + asyncpg + one query: {median['f'] * 1000:.0f} ms "
        f"(launcher fast path over uvicorn alone: {1000 * (median['c'] - median['a']):+.0f} ms)"
    )
    fast_extra = 1000 * (median["c"] - median["a"])
    pending_extra = 1000 * (median["d"] - median["b'"])
    print(
        f"launcher overhead: fast path {fast_extra:+.0f} ms over (a), "
        f"one pending revision {pending_extra:+.0f} ms over (b')"
    )


def main() -> int:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=7, help="measured rounds (default: 7)")
    parser.add_argument(
        "--warmup", type=int, default=1, help="unmeasured rounds first, to fill caches (default: 1)"
    )
    parser.add_argument(
        "--timeout", type=float, default=60.0, help="seconds one start may take (default: 60)"
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    print(common.machine_line("start"), flush=True)
    port = common.free_port()
    samples: dict[str, list[float]] = {variant.key: [] for variant in VARIANTS}
    samples["f"] = []
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as scratch:
        workspace = Workspace(args.admin_url, Path(scratch))
        try:
            workspace.set_up()
            for number in range(args.warmup + args.rounds):
                measured = number >= args.warmup
                times = []
                for variant in common.rotated(VARIANTS, number):
                    seconds = run_once(workspace, variant, port, args.timeout)
                    times.append(f"{variant.key}={seconds * 1000:.0f}")
                    if measured:
                        samples[variant.key].append(seconds)
                # (f): what the launcher cannot go below while it asks through asyncpg.
                floor = common.run_floor(workspace.url_for(VARIANTS[0]))
                times.append(f"f={floor * 1000:.0f}")
                if measured:
                    samples["f"].append(floor)
                name = f"round {number - args.warmup + 1}" if measured else "warm-up"
                print(f"{name:>9}: {' '.join(times)} ms", flush=True)
        finally:
            workspace.close()
    print(common.machine_line("end"))
    report(samples)
    return 0


if __name__ == "__main__":
    common.run_main(main)
