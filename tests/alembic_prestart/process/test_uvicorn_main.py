"""uvicorn_main.py as the process that serves: rarer collections while the app is imported,
Python's own thresholds from its lifespan on, in one process and in each worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from alembic_prestart.entry import LAUNCHER_GC_THRESHOLDS

from tests.support.processes import LoggedProcess, http_json, launcher_env

# An app that says which thresholds its import ran under, and which its lifespan and requests
# run under.
APP = """
import gc, os
from contextlib import asynccontextmanager

IMPORTED_UNDER = gc.get_threshold()
started_under = None


@asynccontextmanager
async def lifespan(app):
    global started_under
    started_under = gc.get_threshold()
    yield


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        async with lifespan(app):
            await receive()
            await send({"type": "lifespan.startup.complete"})
            await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    body = repr([IMPORTED_UNDER, started_under, gc.get_threshold(), os.getpid()]).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def pythons_thresholds() -> list[int]:
    """A fresh interpreter's (this one's may have been changed by a plugin)."""
    found = subprocess.run(
        [sys.executable, "-c", "import gc; print(list(gc.get_threshold()))"],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(found.stdout)


def thresholds(port: int) -> tuple[list[int], list[int], list[int], int]:
    status, body = http_json(port, "GET", "/")
    assert status == 200, body
    imported, started, serving, pid = json.loads(body.decode().replace("(", "[").replace(")", "]"))
    return imported, started, serving, pid


@pytest.mark.parametrize("workers", [1, 2])
def test_the_app_imports_under_rarer_collections_and_serves_under_pythons(
    tmp_path: Path, port: int, workers: int
) -> None:
    (tmp_path / "gc_app.py").write_text(APP)
    argv = [sys.executable, "-m", "alembic_prestart.process.uvicorn_main", "gc_app:app"]
    argv += ["--port", str(port), "--workers", str(workers), "--app-dir", str(tmp_path)]
    server = LoggedProcess(
        argv, env=launcher_env(None), cwd=tmp_path, log_path=tmp_path / "uvicorn.log"
    )
    try:
        server.wait_http(port, "/")
        seen = {}
        for _ in range(40 if workers > 1 else 1):  # fresh connections reach either worker
            imported, started, serving, pid = thresholds(port)
            seen[pid] = (imported, started, serving)
        normal = pythons_thresholds()
        for imported, started, serving in seen.values():
            assert imported == list(LAUNCHER_GC_THRESHOLDS)
            assert started == normal
            assert serving == normal
    finally:
        server.process.terminate()
        server.wait()
