"""Health and metrics routes: ``/healthz`` (alive), ``/readyz`` (model, sources), ``/metrics``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from fastapi.responses import JSONResponse, Response

from detector.outputs.web.hub import Hub
from detector.outputs.web.metrics import CONTENT_TYPE, WebMetrics

# States in which a source is not doing its job (a file that ended is fine).
UNWELL = ("stalled", "blocked")


def health_router(hub: Hub, metrics: WebMetrics) -> APIRouter:
    """The routes an orchestrator and Prometheus call."""
    router = APIRouter(tags=["health"])

    @router.get("/healthz", summary="The process is alive (never needs a token)")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @router.get(
        "/readyz",
        summary="Ready: the model is loaded; each source's state",
        description="200 once the model is loaded, else 503. Sources: starting, running, "
        "reconnecting, stalled (no frame from the source), blocked (frames come in, none "
        "come out) or ended.",
    )
    async def readyz() -> Response:
        sources: list[dict[str, Any]] = [
            {"id": f.key, "name": f.name, "uri": f.uri, "state": f.health()}
            for f in list(hub.feeds)
        ]
        model = hub.model
        body = {
            "ready": model is not None,
            "model": None
            if model is None
            else {k: model.get(k) for k in ("path", "backend", "format", "device", "precision")},
            "sources": sources,
            "unwell": [s["id"] for s in sources if s["state"] in UNWELL],
        }
        return JSONResponse(body, 200 if model is not None else 503)

    @router.get("/metrics", summary="Prometheus metrics (text format), every series detector_*")
    async def prometheus() -> Response:
        return Response(metrics.text(), media_type=CONTENT_TYPE)

    return router
