"""uvicorn_main.py as the process that serves: no collections while the app is imported,
Python's own from its lifespan on, in one process and in each worker."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.processes import LoggedProcess, http_json, launcher_env

# An app that says how the collector stood while it was imported, in its lifespan and while
# it answers.
APP = """
import gc, json, multiprocessing, os

def collector():
    return [gc.isenabled(), list(gc.get_threshold())]


def report(queue):
    queue.put(collector())


def spawned_collector():
    # How the collector stands in a process the app spawns (it imports uvicorn_main too).
    context = multiprocessing.get_context("spawn")
    queue = context.Queue()
    child = context.Process(target=report, args=(queue,))
    child.start()
    found = queue.get(timeout=30)
    child.join()
    return found

IMPORTED_UNDER = collector()
started_under = None


async def app(scope, receive, send):
    global started_under
    if scope["type"] == "lifespan":
        await receive()
        started_under = collector()
        await send({"type": "lifespan.startup.complete"})
        await receive()
        await send({"type": "lifespan.shutdown.complete"})
        return
    if scope["path"] == "/spawn":
        body = json.dumps(spawned_collector()).encode()
    else:
        body = json.dumps(
            {"imported": IMPORTED_UNDER, "started": started_under, "serving": collector(),
             "pid": os.getpid()}
        ).encode()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": body})
"""


def pythons_collector() -> list[object]:
    """A fresh interpreter's (this one's may have been changed by a plugin)."""
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import gc, json; print(json.dumps([gc.isenabled(), list(gc.get_threshold())]))",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(found.stdout)


@pytest.mark.parametrize("workers", [1, 2])
def test_the_app_imports_without_collections_and_serves_with_pythons(
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
            status, body = http_json(port, "GET", "/")
            assert status == 200, body
            answer = json.loads(body)
            seen[answer["pid"]] = answer
        normal = pythons_collector()
        for answer in seen.values():
            assert answer["imported"][0] is False  # the collector off while the app imported
            assert answer["started"] == answer["serving"] == normal
        # A process the app spawns is no worker: Python's collector from its start.
        status, body = http_json(port, "GET", "/spawn")
        assert status == 200, body
        assert json.loads(body) == normal
    finally:
        server.process.terminate()
        server.wait()
