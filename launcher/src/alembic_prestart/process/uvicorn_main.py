"""uvicorn's own command line (`uvicorn.main`), run in this process, with what the launcher adds.

The launcher execs `python -m alembic_prestart.process.uvicorn_main` where it would exec
`python -m uvicorn`: the same options, and the process is uvicorn (same PID, same signals).
Three things are added:

- Workers die with this process, whatever ended it. uvicorn starts its workers (and the server
  under --reload) with multiprocessing's spawn, which imports the parent's main module in each
  child, as `__mp_main__`, before it unpickles anything: the block guarded by that name at the
  end of this module is the first thing a worker runs. It asks the kernel for SIGKILL when
  its parent dies (PR_SET_PDEATHSIG). SIGKILL, not SIGTERM: a graceful stop has uvicorn
  terminate and join its workers before it exits, so a parent gone first was killed, and its
  port must be free for the next start. The server's pid travels in the environment, only when
  uvicorn spawns (with one process, what it spawns is the app's), and each worker takes it out,
  so what a worker spawns is left alone too. multiprocessing's resource tracker ends by itself
  once the processes holding its pipe (the server, its workers) are gone.
- The garbage collector is off until the app is imported (alembic_prestart/entry.py): importing
  uvicorn, FastAPI, pydantic and an app allocates hundreds of thousands of objects and next to
  no garbage, and with Python's thresholds the collector walks that growing heap over and over.
  Right after uvicorn's `Config.load()` (where it imports the app, in the process that serves:
  this one, or each worker) the objects made so far are frozen out of the collector's passes
  and it is on again with Python's thresholds, before the app's lifespan starts and before any
  request.
- The header-limited protocol (httptools_protocol.py), which the launcher names with `--http`,
  gives way to uvicorn's default HTTP implementation when uvicorn cannot serve with it. Without
  httptools that default is h11, which has the same limit (one info line says so); with a uvicorn
  before 0.36 (its `--http` took no class) or a HttpToolsProtocol the subclass no longer fits,
  it is unlimited httptools, and one warning line says so.
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

import click

from alembic_prestart.entry import no_collections, normal_collections

HEADER_LIMITED_PROTOCOL = (
    "alembic_prestart.process.httptools_protocol:HeaderLimitedHttpToolsProtocol"
)
SERVER_PID = "ALEMBIC_PRESTART_SERVER_PID"


def main() -> None:
    no_collections()
    import uvicorn

    args = _header_limit_or_default(uvicorn.main, sys.argv[1:])
    if _spawns_servers(uvicorn.main, args):
        # Only then: with one process, the children this process spawns are the app's own.
        os.environ[SERVER_PID] = str(os.getpid())
        normal_collections()  # this process imports no app: its workers do, each as below
    else:
        _collect_normally_once_loaded()
    uvicorn.main(args=args, prog_name="uvicorn")


def _collect_normally_once_loaded() -> None:
    """Python's collector again as soon as uvicorn has imported the app."""
    from uvicorn.config import Config

    load = getattr(Config, "load", None)
    if load is None:  # a uvicorn that imports the app elsewhere: no window to wait for
        normal_collections()
        return

    def load_then_collect_normally(self: Config) -> None:
        try:
            load(self)
        finally:
            normal_collections()

    Config.load = load_then_collect_normally  # type: ignore[method-assign]


def _spawns_servers(command: click.Command, args: list[str]) -> bool:
    """uvicorn will serve from spawned processes: --workers over 1 (by default
    $WEB_CONCURRENCY, as its --help says) or --reload."""
    params = command.make_context("uvicorn", list(args), resilient_parsing=True).params
    workers = params.get("workers") or os.environ.get("WEB_CONCURRENCY") or 1
    try:
        return bool(params.get("reload")) or int(workers) > 1
    except ValueError:
        return False  # uvicorn says what is wrong with it


def _header_limit_or_default(command: click.Command, args: list[str]) -> list[str]:
    """`args` as given, or without `--http <the header-limited protocol>` when uvicorn cannot
    serve with it (one warning line says why)."""
    if HEADER_LIMITED_PROTOCOL not in args:
        return args  # the user chose --http
    try:
        reason = _why_not_header_limited(command)
    except ValueError as error:  # a bad MAX_HEADER_BYTES: the launcher refuses it before this
        from alembic_prestart.errors import EXIT_CONFIG

        _log_line(f"configuration error: {error}", level=logging.ERROR)
        sys.exit(EXIT_CONFIG)
    if reason is None:
        return args
    at = args.index(HEADER_LIMITED_PROTOCOL)
    without = args[: at - 1] + args[at + 1 :]
    try:
        import httptools  # noqa: F401
    except ImportError as error:
        # uvicorn's default is then h11, which serve.py gives the same limit: nothing is lost.
        _log_line(
            f"httptools is not importable ({error}): uvicorn serves with h11, "
            "under the same request header limit",
            level=logging.INFO,
        )
        return without
    _log_line(
        f"request headers are not size-limited under httptools ({reason}): uvicorn's default "
        "HTTP implementation serves"
    )
    return without


def _why_not_header_limited(command: click.Command) -> str | None:
    """Why uvicorn's command cannot serve with the header-limited protocol; None if it can."""
    import uvicorn

    [http] = [param for param in command.params if param.name == "http"]
    try:
        http.type.convert(HEADER_LIMITED_PROTOCOL, http, None)
    except click.BadParameter:
        # Before uvicorn 0.36, --http was a fixed choice; only Config(http=<class>) took one.
        return f"uvicorn {uvicorn.__version__}'s --http takes no class; 0.36 and later do"
    module, _, name = HEADER_LIMITED_PROTOCOL.partition(":")
    try:
        getattr(importlib.import_module(module), name)
    except (ImportError, AttributeError) as error:
        return str(error)
    return None


def _log_line(message: str, *, level: int = logging.WARNING) -> None:
    """One line, in the launcher's format (LOG_FORMAT), before uvicorn configures logging."""
    from alembic_prestart.observe import logs

    logs.configure(
        os.environ.get("LOG_FORMAT", "text"), timestamps=not os.environ.get("JOURNAL_STREAM")
    )
    logs.logger.log(level, message)


def _die_with_server() -> bool:
    """In a worker: killed by the kernel when the server is, or gone now if it already is.
    False in a process that is no worker of the server (one the app spawned)."""
    server_pid = os.environ.pop(SERVER_PID, None)
    if server_pid is None:
        return False  # not a child of the server: a process a worker spawned
    from alembic_prestart.process.child import _die_with_parent

    _die_with_parent(int(server_pid))
    return True


if __name__ == "__main__":
    main()
elif __name__ == "__mp_main__" and _die_with_server():
    # A worker (or the server under --reload): it imports the app next. A process the app
    # spawned is left with Python's collector.
    no_collections()
    _collect_normally_once_loaded()
