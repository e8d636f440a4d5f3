"""What the launcher does before its exec, alone: time and imports, against the floor and,
optionally, against another checkout of this project (an older launcher).

    .venv/bin/python bench/pre_exec.py                    # 30 rounds after 3 warm-up rounds
    git worktree add /tmp/before <commit>
    .venv/bin/python bench/pre_exec.py --baseline /tmp/before
    .venv/bin/python bench/pre_exec.py --baseline /tmp/before --instructions   # + callgrind

Each variant runs `python <root>/supervisor.py --port P` on a database already at that
checkout's head, with `os.execve` replaced by an exit at the moment the launcher would become
uvicorn. So the time is the launcher's own part of a start at head (interpreter, imports, the
database check, the start report), and the modules are those in `sys.modules` at the exec:
what the launcher imported that uvicorn will import again.

Variants, interleaved round by round and all run by this interpreter (one set of packages):
  (p) this checkout's launcher, up to its exec
  (o) --baseline's launcher, up to its exec (when given)
  (f) the floor: a bare interpreter that imports asyncpg and runs one query (bench/startup.py)

With --instructions, each variant then runs once more under `valgrind --tool=callgrind`, which
counts the instructions the process executes: the same work gives the same count whatever else
the machine does, so a few percent between two launchers shows there, where times cannot.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

# Runnable as `python bench/pre_exec.py` from any directory, like supervisor.py.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench import common
from bench.common import PROJECT_ROOT, BenchError

# Run in the launcher's interpreter: the exec becomes an exit that first writes the modules
# imported so far where MODULES_FILE says. Everything else is the launcher's own start.
UP_TO_EXEC = (
    "import json, os, runpy, sys\n"
    "def stop_at_exec(path, argv, env):\n"
    "    with open(os.environ['BENCH_MODULES_FILE'], 'w') as out:\n"
    "        launcher = sys.modules.get('alembic_prestart') or sys.modules.get('launcher')\n"
    "        json.dump({'modules': sorted(sys.modules), 'launcher': launcher.__file__}, out)\n"
    "    sys.stdout.flush(); sys.stderr.flush()\n"
    "    os._exit(0)\n"
    "os.execve = stop_at_exec\n"
    "script = sys.argv[1]\n"
    "sys.argv = sys.argv[1:]\n"
    "sys.path.insert(0, os.path.dirname(script))\n"
    "runpy.run_path(script, run_name='__main__')\n"
)
# The harness's own imports, left out of the launcher's list.
HARNESS_MODULES = {"runpy", "pkgutil", "importlib.machinery", "importlib.util"}


@dataclass
class Launcher:
    key: str
    label: str
    root: Path
    database_url: str = ""
    modules: frozenset[str] = frozenset()

    def environment(self) -> dict[str, str]:
        """A checkout's own launcher first on the path: this venv's editable install points at
        this checkout's launcher/src, which a baseline's supervisor.py would import otherwise.
        (Before its split, the launcher was a top-level `launcher` package beside it.)"""
        source = self.root / "launcher" / "src"
        return {"PYTHONPATH": str(source)} if source.is_dir() else {}


def run_up_to_exec(
    launcher: Launcher, port: int, scratch: Path, *, under: Sequence[str] = ()
) -> float:
    modules_file = scratch / f"modules-{launcher.key}.json"
    modules_file.unlink(missing_ok=True)
    env = {**common.server_environment(launcher.database_url), **launcher.environment()}
    env["BENCH_MODULES_FILE"] = str(modules_file)
    argv = [common.PYTHON, "-c", UP_TO_EXEC, str(launcher.root / "supervisor.py")]
    started = time.perf_counter()
    result = subprocess.run(
        [*under, *argv, "--port", str(port)],
        cwd=launcher.root,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    seconds = time.perf_counter() - started
    if result.returncode != 0 or not modules_file.exists():
        tail = "\n".join((result.stdout + result.stderr).splitlines()[-20:])
        raise BenchError(f"{launcher.label} exited {result.returncode} before its exec:\n{tail}")
    written = json.loads(modules_file.read_text())
    launcher.modules = frozenset(written["modules"]) - HARNESS_MODULES
    if not Path(written["launcher"]).resolve().is_relative_to(launcher.root.resolve()):
        raise BenchError(f"{launcher.label} imported another checkout's {written['launcher']}")
    return seconds


def callgrind(valgrind: str, log: Path) -> list[str]:
    """Run a command under callgrind, its summary (`Collected : N`) written to `log`."""
    return [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", f"--log-file={log}"]


def collected(log: Path) -> int:
    match = re.search(r"Collected : (\d+)", log.read_text())
    if not match:
        raise BenchError(f"no instruction count in {log}")
    return int(match.group(1))


def count_instructions(
    launchers: list[Launcher], valgrind: str, port: int, scratch: Path
) -> dict[str, int]:
    counts = {}
    for each in launchers:
        log = scratch / f"callgrind-{each.key}.log"
        run_up_to_exec(each, port, scratch, under=callgrind(valgrind, log))
        counts[each.key] = collected(log)
    log = scratch / "callgrind-f.log"
    common.run_floor(launchers[0].database_url, under=callgrind(valgrind, log))
    counts["f"] = collected(log)
    return counts


def report_instructions(launchers: list[Launcher], counts: dict[str, int]) -> None:
    print()
    rows = [[each.label, f"{counts[each.key]:,}"] for each in launchers]
    common.print_table(["variant", "instructions"], [*rows, ["(f)  floor", f"{counts['f']:,}"]])
    print(f"(p)/(f) in instructions: {counts['p'] / counts['f']:.3f}")
    if "o" in counts:
        print(f"(p)/(o) in instructions: {counts['p'] / counts['o']:.3f}")


def own_modules(modules: frozenset[str]) -> frozenset[str]:
    """The launcher's and the project's own modules (not the standard library, not packages)."""
    roots = {"alembic_prestart", "launcher", "service", "supervisor", "__main__"}
    return frozenset(name for name in modules if name.split(".")[0] in roots)


def report(launchers: list[Launcher], samples: dict[str, list[float]]) -> None:
    rows = []
    for key, label in [(each.key, each.label) for each in launchers] + [("f", "(f)  floor")]:
        median, low, high = common.summary(samples[key])
        rows.append([label, len(samples[key])] + [f"{v * 1000:.1f}" for v in (median, low, high)])
    print()
    common.print_table(["variant", "runs", "median ms", "min ms", "max ms"], rows)
    median = {key: common.summary(values)[0] for key, values in samples.items()}
    print()
    print(f"(p)/(f) this launcher over the floor: {median['p'] / median['f']:.3f}")
    for each in launchers:
        own = own_modules(each.modules)
        print(
            f"{each.label}: {len(each.modules)} modules at the exec, {len(own)} of them the "
            f"launcher's or the project's, {len(each.modules - own)} others"
        )
    if len(launchers) == 2:
        this, baseline = launchers
        print(f"(p)/(o) this launcher over the baseline: {median['p'] / median['o']:.3f}")
        for title, names in (
            ("imported only by this launcher", this.modules - baseline.modules),
            ("imported only by the baseline", baseline.modules - this.modules),
        ):
            others = sorted(names - own_modules(names))
            print(f"{title}, besides their own modules: {', '.join(others) or 'none'}")


def main() -> int:
    parser = common.argument_parser(__doc__)
    parser.add_argument("--rounds", type=int, default=30, help="measured rounds (default: 30)")
    parser.add_argument("--warmup", type=int, default=3, help="unmeasured rounds (default: 3)")
    parser.add_argument(
        "--baseline", type=Path, help="another checkout of this project to compare with"
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="also count each variant's instructions once under valgrind's callgrind",
    )
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be at least 1")
    valgrind = shutil.which("valgrind") if args.instructions else None
    if args.instructions and not valgrind:
        parser.error("--instructions needs valgrind on PATH (Debian: apt-get install valgrind)")
    launchers = [Launcher("p", "(p)  this launcher", PROJECT_ROOT)]
    if args.baseline:
        baseline = args.baseline.resolve()
        if not (baseline / "supervisor.py").is_file():
            parser.error(f"--baseline {baseline}: no supervisor.py there")
        launchers.append(Launcher("o", "(o)  the baseline", baseline))
    print(common.machine_line("start"), flush=True)
    port = common.free_port()
    samples: dict[str, list[float]] = {each.key: [] for each in launchers}
    samples["f"] = []
    names: list[str] = []
    try:
        for each in launchers:
            # Each checkout on a database at its own head, migrated outside the timing.
            names.append(common.database_name(each.key.replace("'", "")))
            each.database_url = common.create_database(args.admin_url, names[-1])
            common.alembic(
                each.root, each.database_url, "upgrade", "head", extra_env=each.environment()
            )
        with tempfile.TemporaryDirectory(prefix="bench-pre-exec-") as scratch:
            for number in range(args.warmup + args.rounds):
                measured = number >= args.warmup
                for each in common.rotated(launchers, number):
                    seconds = run_up_to_exec(each, port, Path(scratch))
                    if measured:
                        samples[each.key].append(seconds)
                floor = common.run_floor(launchers[0].database_url)
                if measured:
                    samples["f"].append(floor)
            counts = (
                count_instructions(launchers, valgrind, port, Path(scratch)) if valgrind else {}
            )
    finally:
        for name in names:
            common.drop_database(args.admin_url, name)
    print(common.machine_line("end"))
    report(launchers, samples)
    if counts:
        report_instructions(launchers, counts)
    return 0


if __name__ == "__main__":
    common.run_main(main)
