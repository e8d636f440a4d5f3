"""GET /metrics: the service's metrics in Prometheus' text format (service/metrics.py)."""

from typing import TYPE_CHECKING, Annotated

from fastapi import APIRouter, Depends, Request, Response

if TYPE_CHECKING:
    from service.metrics import ServiceMetrics

router = APIRouter(tags=["metrics"])


async def get_metrics(request: Request) -> "ServiceMetrics":
    metrics: ServiceMetrics = request.app.state.metrics
    return metrics


MetricsDep = Annotated["ServiceMetrics", Depends(get_metrics)]


# Not in the OpenAPI document: it describes the users API, and this is for the operator.
@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request, metrics: MetricsDep) -> Response:
    """Serve the metrics of every worker, summed, in Prometheus' text format."""
    store = getattr(request.app.state, "store", None)
    return Response(metrics.render(store), media_type=metrics.content_type)
