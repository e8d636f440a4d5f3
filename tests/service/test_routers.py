"""service/routers/__init__.py: a router's routes declared on the app, as declared on it."""

from __future__ import annotations

import pytest
from fastapi import APIRouter, Depends, FastAPI
from fastapi.routing import APIRoute
from fastapi.testclient import TestClient
from starlette.routing import Route

from service.main import create_app
from service.routers import add_routes, users


def test_the_apps_routes_are_the_routers_own_declared_on_the_app() -> None:
    """Each users route is on the app itself (matched once), with everything the router gave
    it: path with the prefix, tags, responses, operation id, response model."""
    app = create_app()
    on_app = {
        (route.path, frozenset(route.methods)): route
        for route in app.routes
        if isinstance(route, APIRoute)
    }
    for declared in users.router.routes:
        assert isinstance(declared, APIRoute)
        route = on_app[(declared.path, frozenset(declared.methods))]
        assert route.endpoint is declared.endpoint
        assert route.tags == declared.tags == ["users"]
        assert route.responses == declared.responses
        assert route.operation_id == declared.operation_id
        assert route.response_model is declared.response_model
        assert route.status_code == declared.status_code
    assert all(isinstance(route, (APIRoute, Route)) for route in app.router.routes)


def test_the_apps_dependency_overrides_reach_the_added_routes() -> None:
    async def real() -> str:
        return "real"

    router = APIRouter(prefix="/things")

    @router.get("")
    async def things(value: str = Depends(real)) -> dict[str, str]:
        return {"value": value}

    app = FastAPI()
    add_routes(app, router)

    async def override() -> str:
        return "override"

    app.dependency_overrides[real] = override
    assert TestClient(app).get("/things").json() == {"value": "override"}


def test_a_route_that_is_not_an_api_route_is_refused() -> None:
    async def plain(request: object) -> None: ...

    router = APIRouter()
    router.routes.append(Route("/plain", plain))
    with pytest.raises(TypeError, match="not an API route"):
        add_routes(FastAPI(), router)


def test_a_router_with_start_up_handlers_is_refused() -> None:
    router = APIRouter()
    router.on_startup.append(lambda: None)
    with pytest.raises(TypeError, match="start-up or shut-down handlers"):
        add_routes(FastAPI(), router)
