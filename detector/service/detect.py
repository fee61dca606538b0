"""The detection API: DeepStack's ``POST /v1/vision/detection`` and ``POST /api/detect``.

Both decode the upload off the event loop, queue it for the batcher (a full queue answers
503 with ``Retry-After``) and filter the detections by the request's own threshold and
classes. DeepStack clients (Home Assistant's integration, Blue Iris, Frigate's ``deepstack``
detector) get exactly DeepStack's answer: ``{"success": true, "predictions": [{"label",
"confidence", "x_min", "y_min", "x_max", "y_max"}], "duration": 0}`` with integer pixels.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass
from typing import Any

import cv2
from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from detector.draw import annotate
from detector.errors import ConfigError
from detector.labels import LabelMap
from detector.outputs.jsonl import detections_json
from detector.outputs.web.access import authorized
from detector.outputs.web.metrics import WebMetrics
from detector.outputs.web.server import error_response
from detector.service.batcher import Batcher, QueueFull
from detector.service.decode import BadImage, decode_image
from detector.types import Detections

DEEPSTACK_MIN_CONFIDENCE = 0.4  # what a DeepStack server uses when the field is absent
_ANSWER_TIMEOUT_S = 60.0


@dataclass
class DetectApi:
    """What the detection routes share.

    Attributes:
        batcher: Queues images for the model.
        labels: Class names.
        threshold: Default score threshold (``detect.threshold``).
        class_ids: Default class filter (``detect.classes``), None for all.
        max_pixels: Largest image accepted.
        metrics: Request counters and timings.
    """

    batcher: Batcher
    labels: LabelMap
    threshold: float
    class_ids: frozenset[int] | None
    max_pixels: int
    metrics: WebMetrics


class _Refused(Exception):
    def __init__(self, status: int, message: str, hint: str = "", retry: bool = False) -> None:
        super().__init__(message)
        self.status, self.hint, self.retry = status, hint, retry


async def _upload(request: Request, field: str = "image") -> tuple[bytes, dict[str, str]]:
    """The image bytes (multipart field ``field``, or the raw body) and the other form fields."""
    # Only multipart carries a file: any other body is the image itself (curl --data-binary
    # and urllib label raw bytes application/x-www-form-urlencoded).
    if request.headers.get("content-type", "").startswith("multipart/form-data"):
        async with request.form(max_files=4, max_fields=32) as form:
            fields = {k: v for k, v in form.items() if isinstance(v, str)}
            part = form.get(field)
            if not isinstance(part, UploadFile):
                raise _Refused(
                    400,
                    f"no file in the form field '{field}'",
                    f"send the image as multipart field '{field}' (curl -F {field}=@photo.jpg)",
                )
            return await part.read(), fields
    return await request.body(), {}


async def _detect(api: DetectApi, data: bytes) -> tuple[Any, Detections, float]:
    """Decode ``data`` and detect on it: (image, unfiltered detections, model ms)."""
    try:
        image = await run_in_threadpool(decode_image, data, api.max_pixels)
    except BadImage as exc:
        raise _Refused(exc.status, str(exc), exc.hint) from None
    t0 = time.perf_counter()
    try:
        future = api.batcher.submit(image)
    except QueueFull as exc:
        raise _Refused(503, f"the model is busy: {exc}", "retry shortly", retry=True) from None
    try:
        found = await asyncio.wait_for(asyncio.wrap_future(future), _ANSWER_TIMEOUT_S)
    except (TimeoutError, asyncio.TimeoutError):
        raise _Refused(504, "the model did not answer in time", "retry later") from None
    except Exception as exc:
        raise _Refused(500, f"detection failed: {exc}") from None
    return image, found, (time.perf_counter() - t0) * 1e3


def _threshold(text: str | float | None, default: float, name: str) -> float:
    if text is None or text == "":
        return default
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0.0 <= value <= 1.0:
        raise _Refused(400, f"{name} {text!r} is not a number in [0, 1]", f"e.g. {name}=0.5")
    return value


def _refusal(request: Request, api: DetectApi, route: str, exc: _Refused) -> JSONResponse:
    api.metrics.requests.labels(route, str(exc.status)).inc()
    headers = {"Retry-After": "1"} if exc.retry else None
    return error_response(request, exc.status, str(exc), headers, exc.hint or None)


def detect_router(api: DetectApi) -> APIRouter:
    """The routes of the detection API over ``api``."""
    router = APIRouter(tags=["detection"])
    _add_deepstack(router, api)
    _add_detect(router, api)
    return router


def _predictions(found: Detections, labels: LabelMap) -> list[dict[str, Any]]:
    """DeepStack's ``predictions``: label, confidence and integer pixel corners."""
    return [
        {
            "label": labels.name(int(c)),
            "confidence": round(float(s), 4),
            "y_min": round(float(b[1])),
            "x_min": round(float(b[0])),
            "y_max": round(float(b[3])),
            "x_max": round(float(b[2])),
        }
        for b, s, c in zip(found.xyxy, found.scores, found.class_ids, strict=True)
    ]


def _answered(api: DetectApi, route: str, start: float) -> None:
    api.metrics.requests.labels(route, "200").inc()
    api.metrics.request_seconds.labels(route).observe(time.perf_counter() - start)


def _add_deepstack(router: APIRouter, api: DetectApi) -> None:
    @router.post(
        "/v1/vision/detection",
        summary="DeepStack-compatible object detection",
        description="multipart `image` (the file), optional `min_confidence` (0-1, default "
        "0.4) and `api_key` (the service's token, when it has one).",
    )
    async def deepstack(request: Request) -> Response:
        route, start = "deepstack", time.perf_counter()
        try:
            data, fields = await _upload(request)
            if not authorized(request.scope, fields.get("api_key")):
                raise _Refused(401, "Incorrect api key", "send the service's token as api_key")
            min_conf = _threshold(
                fields.get("min_confidence"), DEEPSTACK_MIN_CONFIDENCE, "min_confidence"
            )
            _, found, _ = await _detect(api, data)
        except _Refused as exc:
            return _refusal(request, api, route, exc)
        predictions = _predictions(found.filter(min_conf), api.labels)
        _answered(api, route, start)
        return JSONResponse({"success": True, "predictions": predictions, "duration": 0})


def _classes(api: DetectApi, classes: str | None) -> frozenset[int] | None:
    """A request's class filter (names or ids, comma-separated), or the default."""
    if not classes:
        return api.class_ids
    try:
        return api.labels.resolve_classes(
            [c.strip() for c in classes.split(",") if c.strip()], key="classes"
        )
    except ConfigError as exc:
        raise _Refused(400, str(exc), exc.hint or "") from None


def _add_detect(router: APIRouter, api: DetectApi) -> None:
    @router.post(
        "/api/detect",
        summary="Detect objects in one image",
        description="The image as multipart field `image` or as the raw body. Answers the "
        "detections (`label`, `class_id`, `score`, `box_xyxy` in pixels) or, with "
        "`annotated=1`, the image with the boxes drawn, as JPEG.",
    )
    async def detect(
        request: Request,
        threshold: float | None = Query(None, ge=0.0, le=1.0, description="minimum score"),
        classes: str | None = Query(None, description="names or ids, comma-separated"),
        annotated: bool = Query(False, description="answer the drawn image (JPEG)"),
    ) -> Response:
        route, start = "detect", time.perf_counter()
        try:
            class_ids = _classes(api, classes)
            data, _ = await _upload(request)
            image, found, ms = await _detect(api, data)
        except _Refused as exc:
            return _refusal(request, api, route, exc)
        kept = found.filter(api.threshold if threshold is None else threshold, class_ids)
        _answered(api, route, start)
        if annotated:
            jpeg = await run_in_threadpool(_drawn, image, kept, api.labels)
            return Response(jpeg, media_type="image/jpeg")
        return JSONResponse(
            {
                "width": int(image.shape[1]),
                "height": int(image.shape[0]),
                "time_ms": round(ms, 2),
                "detections": detections_json(kept, api.labels),
            }
        )


def _drawn(image: Any, found: Detections, labels: LabelMap) -> bytes:
    ok, buf = cv2.imencode(".jpg", annotate(image, found, labels), [cv2.IMWRITE_JPEG_QUALITY, 90])
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    return bytes(buf.tobytes())
