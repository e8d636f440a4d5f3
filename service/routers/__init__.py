"""One router module per resource; `add_routes` puts a router's routes on the app.

`app.include_router()` in this FastAPI keeps the included router as a nested router that every
request walks through: each request is matched twice, against the included router and then
against its route, with a context object per route looked up on the way (9-14 µs a request
in process here, `included` against `service` in bench/router_overhead.py). `add_routes`
does what `include_router` did in earlier FastAPI releases: it declares each of the
router's routes on the app again, with everything the router gave it (its prefix, tags,
responses and dependencies are already part of each route). The routes are then ordinary
routes of the app: matched once, with the app's dependency overrides, middleware, error
handlers and OpenAPI document, exactly as if they had been declared there.
"""

import inspect

from fastapi import APIRouter, FastAPI
from fastapi.routing import APIRoute

# What a route keeps of its declaration, by the names add_api_route takes: all but these.
_NOT_COPIED = frozenset({"self", "path", "endpoint", "route_class_override"})
_DECLARATION = tuple(
    name
    for name in inspect.signature(APIRouter.add_api_route).parameters
    if name not in _NOT_COPIED
)


def add_routes(app: FastAPI, router: APIRouter) -> None:
    """Declare every route of `router` on `app`, in order, as it was declared on the router."""
    if router.on_startup or router.on_shutdown:
        raise TypeError("the router has start-up or shut-down handlers: include it instead")
    for route in router.routes:
        if not isinstance(route, APIRoute):  # this project's routers hold API routes only
            raise TypeError(f"{route!r} is not an API route: include its router instead")
        # Every part of the declaration, or an AttributeError naming one this FastAPI added.
        declaration = {name: getattr(route, name) for name in _DECLARATION}
        if route.stream_item_type is not None:
            # A streaming route's item type is read from its endpoint only when no response
            # model is given.
            del declaration["response_model"]
        app.router.add_api_route(
            route.path, route.endpoint, route_class_override=type(route), **declaration
        )
