"""FastAPI's per-request cost of an included router, in process, without network or database.

    .venv/bin/python bench/router_overhead.py

Drives three ASGI apps directly (no server, no socket) with GET /users/1 and POST /users, the
database replaced by an object that answers at once, and prints the best time per request over
--rounds rounds of --requests requests:
  floor      bench/raw_asyncpg_app.py (routes declared on the app, no response model)
  service    service.main.create_app() (each router's routes declared on the app by
             service/routers/__init__.py's add_routes; metrics on)
  bare       the same with METRICS_ENABLED=false: no request metrics
  included   the same app with its routers included by FastAPI's app.include_router()
The difference between `included` and `service` is what FastAPI's included-router dispatch
costs per request, which add_routes saves; between `service` and `bare`, what the request
metrics cost.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

ROW = {"id": 1, "name": "bench", "email": "a@bench.example.com", "created_at": datetime.now(UTC)}
BODY = b'{"name":"bench user 1","email":"abcdef-t1-1@bench.example.com"}'


class InstantStore:
    async def get(self, user_id: int) -> dict[str, Any]:
        return dict(ROW)

    async def create(self, values: dict[str, Any]) -> dict[str, Any]:
        return dict(ROW)


class InstantPool:
    async def fetchrow(self, *args: Any) -> dict[str, Any]:
        return dict(ROW)


def floor() -> Any:
    from bench import raw_asyncpg_app

    raw_asyncpg_app.pool = InstantPool()  # type: ignore[assignment]
    return raw_asyncpg_app.app


def service() -> Any:
    from service.main import create_app

    app = create_app()
    app.state.store = InstantStore()
    return app


def bare() -> Any:
    import os

    from service.main import create_app

    os.environ["METRICS_ENABLED"] = "false"
    try:
        app = create_app()
    finally:
        del os.environ["METRICS_ENABLED"]
    app.state.store = InstantStore()
    return app


def included() -> Any:
    from fastapi import FastAPI

    from service.body_limit import BodySizeLimit
    from service.errors import install_error_handlers
    from service.metrics import install_metrics
    from service.routers import health, users

    app = FastAPI()
    app.include_router(users.router)
    app.include_router(health.router)
    install_error_handlers(app)
    app.add_middleware(BodySizeLimit, max_bytes=64 * 1024)
    install_metrics(app)
    app.state.store = InstantStore()
    return app


async def per_request(app: Any, method: str, path: str, body: bytes, count: int) -> float:
    headers = [(b"host", b"bench")]
    if body:
        headers += [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    statuses: set[int] = set()

    async def send(message: dict) -> None:
        if message["type"] == "http.response.start":
            statuses.add(message["status"])

    started = time.perf_counter()
    for _ in range(count):
        delivered = False

        async def receive() -> dict:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            await asyncio.Event().wait()  # never: the request does not read past its body
            raise AssertionError

        scope = {
            "type": "http",
            "asgi": {"version": "3.0"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "path": path,
            "raw_path": path.encode(),
            "query_string": b"",
            "root_path": "",
            "headers": headers,
            "client": ("127.0.0.1", 1),
            "server": ("127.0.0.1", 80),
        }
        await app(scope, receive, send)
    if not statuses <= {200, 201}:
        raise SystemExit(f"unexpected statuses {statuses} for {method} {path}")
    return (time.perf_counter() - started) / count * 1e6


async def measure(rounds: int, count: int) -> None:
    apps = {"floor": floor(), "service": service(), "bare": bare(), "included": included()}
    best: dict[str, list[float]] = {name: [float("inf")] * 2 for name in apps}
    for _ in range(rounds):  # interleaved; the best round is the least disturbed one
        for name, app in apps.items():
            get = await per_request(app, "GET", "/users/1", b"", count)
            post = await per_request(app, "POST", "/users", BODY, count)
            best[name] = [min(best[name][0], get), min(best[name][1], post)]
    print(f"{'app':<10} {'GET /users/{id} us':>20} {'POST /users us':>16}")
    for name, (get, post) in best.items():
        print(f"{name:<10} {get:>20.1f} {post:>16.1f}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=9, help="rounds (default: 9)")
    parser.add_argument("--requests", type=int, default=2000, help="per round (default: 2000)")
    args = parser.parse_args()
    asyncio.run(measure(args.rounds, args.requests))


if __name__ == "__main__":
    main()
