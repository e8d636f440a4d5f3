"""The service's Prometheus metrics, served by GET /metrics (service/routers/metrics.py).

- `http_requests_total` and `http_request_duration_seconds` (a histogram), by `route`, `method`
  and `status`, and `http_requests_in_flight`: one ASGI middleware, the outermost, so every
  answer counts (a 413 from the body limit, a 422, a 500 from a bug). `route` is the template
  FastAPI matched (`/users/{user_id}`, from scope["route"], read once per route); a request
  that matched none (404, a slash redirect, a 413 before routing) is `route="unmatched"`, and a
  method outside the standard ones is `OTHER`: the label sets stay bounded whatever clients
  send. /metrics itself is not counted.
- `users_db_pool_connections`, `users_db_pool_connections_in_use` (PostgreSQL) and
  `users_db_pool_max_connections`, by `backend`: the asyncpg pool, or SQLite's one connection.
- `users_store_errors_total{cause}`: each database failure answered (service/failures.py).
- The launcher's start report (alembic_prestart.metrics): phases, lock wait, revisions.

Per request the cost is one bucket and one sum in plain numbers (service/request_tallies.py,
turned into the counter and histogram when /metrics is read), and an integer for in-flight; the
values of the moment (in flight, the pool) are published every second and at each scrape.

Workers: under `uvicorn --workers N` (and --reload) each worker is a process multiprocessing
spawned, and a scrape reaches one of them, so the values are summed over files the workers
write: the gauges and store errors through prometheus_client's multiprocess mode, the request
counts as each worker's tallies, written every second and as it stops. The directory is this
start's own, named after the server process the workers share (its pid and start time), under
METRICS_DIR (default: the temp folder); the first worker makes it, and removes those of servers
no longer running. prometheus_client picks its mode when first imported, from
PROMETHEUS_MULTIPROC_DIR, which is set here first. A process serving alone keeps its values in
memory.

METRICS_ENABLED=false: no middleware, no route.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import multiprocessing
import os
import shutil
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Callable
from functools import cache
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from pydantic_settings import BaseSettings, SettingsConfigDict
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.failures import Cause, DatabaseFailure
from service.store import UserStore

logger = logging.getLogger("service.metrics")

METRICS_PATH = "/metrics"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
OTHER_METHOD = "OTHER"
PUBLISH_EVERY_SECONDS = 1.0
MULTIPROC_DIR = "PROMETHEUS_MULTIPROC_DIR"
DIRECTORY_PREFIX = "users-service-metrics-"
# From a cached read (about 1 ms here) to the database timeout (5 s).
BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class MetricsSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="METRICS_", extra="ignore")

    enabled: bool = True
    # Where each start's multiprocess directory goes (several workers only).
    dir: Path | None = None


class ServiceMetrics:
    """The metrics of this process, and the registry /metrics renders."""

    def __init__(self, directory: Path | None) -> None:
        from alembic_prestart.metrics import register_start_report
        from prometheus_client import (
            CONTENT_TYPE_LATEST,
            CollectorRegistry,
            Counter,
            Gauge,
            disable_created_metrics,
        )
        from prometheus_client.multiprocess import MultiProcessCollector

        from service.request_tallies import RequestTallies  # imports prometheus_client

        # The *_created series double the output and multiprocess mode has none: none here.
        disable_created_metrics()  # type: ignore[no-untyped-call]
        self.content_type = CONTENT_TYPE_LATEST  # what generate_latest writes
        self.directory = directory
        self.registry = CollectorRegistry()
        own: CollectorRegistry | None = self.registry
        if directory is not None:
            # prometheus_client's multiprocess module is not annotated.
            MultiProcessCollector(self.registry, path=str(directory))  # type: ignore[no-untyped-call]
            own = None  # the files are what is served, not this process's objects
        self.requests = RequestTallies(BUCKETS, directory, worker=_process_name(os.getpid()))
        self.registry.register(self.requests)
        self.in_flight_gauge = Gauge(
            "http_requests_in_flight",
            "Requests being answered.",
            multiprocess_mode="livesum",
            registry=own,
        )
        pool = ["backend"]
        self.pool_connections = Gauge(
            "users_db_pool_connections",
            "Open database connections.",
            pool,
            multiprocess_mode="livesum",
            registry=own,
        )
        self.pool_in_use = Gauge(
            "users_db_pool_connections_in_use",
            "Database connections running a statement for a request (PostgreSQL).",
            pool,
            multiprocess_mode="livesum",
            registry=own,
        )
        self.pool_max = Gauge(
            "users_db_pool_max_connections",
            "The most database connections the workers may open.",
            pool,
            multiprocess_mode="livesum",
            registry=own,
        )
        self.store_errors = Counter(
            "users_store_errors",
            "Database failures answered (503, 507), by cause.",
            ["cause"],
            registry=own,
        )
        for cause in Cause:  # each at 0 from the start, so that rate() sees the first one
            self.store_errors.labels(cause_label(cause))
        self.in_flight = 0
        try:
            register_start_report(self.registry)
        except ValueError as error:
            logger.warning("the launcher's start report is not served: %s", error)

    def count_store_error(self, cause: Cause) -> None:
        self.store_errors.labels(cause_label(cause)).inc()

    def publish(self, store: UserStore | None) -> None:
        """Write the values of the moment, and this worker's request counts, where a scrape
        reads them."""
        self.requests.save()
        self.in_flight_gauge.set(self.in_flight)
        if store is None:  # not open yet, or closed
            return
        state = store.pool_state()
        self.pool_connections.labels(state.backend).set(state.size)
        self.pool_max.labels(state.backend).set(state.maximum)
        if state.in_use is not None:
            self.pool_in_use.labels(state.backend).set(state.in_use)

    def publish_or_log(self, store: UserStore | None) -> None:
        """publish(), where a file it cannot write (the directory gone, a full disk) is one
        error line: the last values written keep serving."""
        try:
            self.publish(store)
        except OSError as error:
            logger.error("publishing the metrics failed: %s", error)

    def render(self, store: UserStore | None) -> bytes:
        """The text format, every worker's values summed."""
        from prometheus_client import generate_latest

        self.publish_or_log(store)
        if self.directory is not None:
            _forget_dead_workers(self.directory)
        return generate_latest(self.registry)


def cause_label(cause: Cause) -> str:
    return cause.name.lower()  # "not_migrated", "storage_full", "timed_out"...


class RequestMetrics:
    """Counts and times every answer of the app; the outermost middleware."""

    def __init__(self, app: ASGIApp, *, metrics: ServiceMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] == METRICS_PATH:
            await self.app(scope, receive, send)
            return
        status = 500  # what the client gets if the app raises before it answers
        metrics = self.metrics
        count = metrics.requests.add

        async def send_and_note_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        method = scope["method"]
        if method not in METHODS:
            method = OTHER_METHOD
        metrics.in_flight += 1
        started = time.perf_counter()
        try:
            await self.app(scope, receive, send_and_note_status)
        finally:
            metrics.in_flight -= 1
            count(scope.get("route"), method, status, time.perf_counter() - started)


def install_metrics(app: FastAPI) -> None:
    """GET /metrics, the request middleware and the store-error count; after the error
    handlers and the other middleware (this one must be the outermost)."""
    settings = MetricsSettings()
    if not settings.enabled:
        return
    try:
        metrics = process_metrics(settings.dir)  # first: it decides how prometheus_client counts
    except (OSError, RuntimeError) as error:
        # Per-worker figures served as if they were the whole would mislead: none at all.
        logger.error("metrics off: %s (METRICS_DIR must name a folder this user may write)", error)
        return
    from service.routers import add_routes
    from service.routers import metrics as route

    app.state.metrics = metrics
    add_routes(app, route.router)
    app.add_middleware(RequestMetrics, metrics=metrics)
    _count_store_errors(app, metrics)
    if metrics.directory is not None:
        _publish_while_serving(app, metrics)


@cache
def process_metrics(base: Path | None) -> ServiceMetrics:
    """This process's metrics, made once (every app of the process shares them)."""
    directory = multiprocess_directory(base or Path(tempfile.gettempdir()))
    if "prometheus_client" not in sys.modules:  # it reads the variable once, on import
        if directory is None:
            os.environ.pop(MULTIPROC_DIR, None)  # one process: nothing to share
        else:
            os.environ[MULTIPROC_DIR] = str(directory)
    elif directory is not None and os.environ.get(MULTIPROC_DIR) != str(directory):
        raise RuntimeError(
            "prometheus_client was imported before service.metrics could set "
            f"{MULTIPROC_DIR}: the workers' metrics could not be summed"
        )
    return ServiceMetrics(directory)


def _count_store_errors(app: FastAPI, metrics: ServiceMetrics) -> None:
    answer = app.exception_handlers.get(DatabaseFailure)
    if answer is None:
        raise RuntimeError("install the error handlers before the metrics")

    async def counted(request: Request, error: Exception) -> Any:
        if isinstance(error, DatabaseFailure):
            metrics.count_store_error(error.cause)
        response = answer(request, error)
        return await response if inspect.isawaitable(response) else response

    app.exception_handlers[DatabaseFailure] = counted


def _publish_while_serving(app: FastAPI, metrics: ServiceMetrics) -> None:
    """With several workers, each publishes its values of the moment every second: a scrape
    reaches only one of them."""
    serve: Callable[[Any], contextlib.AbstractAsyncContextManager[Any]]
    serve = app.router.lifespan_context

    async def publish_forever() -> None:
        while True:
            try:
                metrics.publish(getattr(app.state, "store", None))
            except Exception:  # a metric must never stop the worker
                logger.exception("publishing the metrics failed")
            await asyncio.sleep(PUBLISH_EVERY_SECONDS)

    @contextlib.asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with serve(app) as state:
            task = asyncio.create_task(publish_forever())
            try:
                yield state
            finally:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
                metrics.publish_or_log(None)  # the last counts, for the workers left

    app.router.lifespan_context = lifespan


# --- the multiprocess directory -----------------------------------------------------------


def multiprocess_directory(base: Path) -> Path | None:
    """This start's directory, made if need be, when this process is one of several a server
    spawned; None when it serves alone."""
    parent = multiprocessing.parent_process()
    if parent is None or parent.pid is None:
        return None
    directory = base / f"{DIRECTORY_PREFIX}{_process_name(parent.pid)}"
    base.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):  # another worker made it
        directory.mkdir(mode=0o700)
    found = directory.lstat()
    if not directory.is_dir() or directory.is_symlink() or found.st_uid != os.getuid():
        raise RuntimeError(f"{directory} is not a directory of this user's: metrics off")
    _remove_stale_directories(base, keep=directory)
    return directory


def _process_name(pid: int) -> str:
    """`<pid>-<start ticks>`: one process for good, read back by _remove_stale_directories."""
    return f"{pid}-{_start_ticks(pid)}"


def _start_ticks(pid: int) -> str:
    """When the process started (clock ticks since boot, Linux): a pid and this name one
    process, where a pid alone may be reused by the next start (PID 1 in a container)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _remove_stale_directories(base: Path, *, keep: Path) -> None:
    """The directories of servers that no longer run: their values are of a finished start."""
    for path in base.glob(f"{DIRECTORY_PREFIX}*"):
        if path == keep:
            continue
        pid, _, ticks = path.name.removeprefix(DIRECTORY_PREFIX).partition("-")
        if not pid.isdigit() or _running(int(pid), ticks):
            continue
        shutil.rmtree(path, ignore_errors=True)  # another worker may be removing it too


def _running(pid: int, ticks: str) -> bool:
    if ticks:
        return _start_ticks(pid) == ticks
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _forget_dead_workers(directory: Path) -> None:
    """A worker that died (uvicorn starts another) no longer counts in the gauges of the
    moment; its counters stay, as the answers it gave did happen."""
    from prometheus_client.multiprocess import mark_process_dead

    for path in directory.glob("gauge_live*_*.db"):
        pid = path.stem.rsplit("_", 1)[1]
        if pid.isdigit() and not _running(int(pid), ""):
            mark_process_dead(int(pid), str(directory))  # type: ignore[no-untyped-call]
