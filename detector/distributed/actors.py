"""The actors: each loads the model once through the project's loader and runs the same Engine.

Each actor of the pool is one instance (image files: :mod:`pool`'s plain actors; video ranges:
Ray Data's ``map_batches(RangeActor, ...)``), called with batches of work. Work goes in as
paths (images) or frame ranges (videos), never pixels; results come out as plain columns with
JSON-serialisable detections. A file that cannot be read or decoded is a result with its
reason, so the job goes on. A model that cannot be loaded raises :class:`ActorStartError`,
whose text carries the message for the driver.
"""

from __future__ import annotations

import json
import os
import socket
import time
from collections.abc import Iterator
from typing import Any

import numpy as np

from detector.distributed.media import RangeReader, frame_digest
from detector.distributed.options import ModelSpec
from detector.imagefiles import read_image
from detector.types import Detections, Frame

# The driver finds the actor's message after this marker in Ray's error text.
START_ERROR_MARKER = "detector-actor-start-error:"
# Frames of a video range handed back per output batch (results stream to the driver).
RANGE_CHUNK_FRAMES = 16


class ActorStartError(RuntimeError):
    """The model could not be loaded in an actor (its message, JSON-encoded after a marker)."""

    def __init__(self, message: str, hint: str | None, actor: str) -> None:
        payload = json.dumps({"message": message, "hint": hint, "actor": actor})
        super().__init__(f"{START_ERROR_MARKER}{payload}")


def detections_to_json(d: Detections) -> str:
    """``[[x1, y1, x2, y2, score, class_id], ...]``: float32 values written exactly."""
    rows = [
        [*(float(v) for v in box), float(s), int(c)]
        for box, s, c in zip(d.xyxy, d.scores, d.class_ids, strict=True)
    ]
    return json.dumps(rows, separators=(",", ":"))


def detections_from_json(text: str) -> Detections:
    """The inverse of :func:`detections_to_json` (the same float32 values)."""
    rows = json.loads(text)
    if not rows:
        return Detections.empty()
    a = np.asarray(rows, dtype=np.float64)
    return Detections(
        a[:, :4].astype(np.float32), a[:, 4].astype(np.float32), a[:, 5].astype(np.int32)
    )


def actor_name() -> str:
    """``host:pid`` of this process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class _ModelActor:
    """Loads the model once; ``detect`` runs the Engine on one BGR image."""

    def __init__(self, spec: ModelSpec) -> None:
        self.name = actor_name()
        try:
            from detector.engine import Engine
            from detector.model.options import load_with

            model: Any = load_with(spec.model)
            if spec.warmup_runs:
                model.warm_up(runs=spec.warmup_runs)
        except Exception as exc:
            message = getattr(exc, "message", None) or f"{type(exc).__name__}: {exc}"
            raise ActorStartError(message, getattr(exc, "hint", None), self.name) from None
        self.model = model
        self.engine = Engine(model, spec.threshold, spec.class_ids, spec.max_boxes)
        self.every = max(1, spec.detect_every)

    def detect(self, index: int, image: np.ndarray) -> tuple[Detections, float]:
        return self.engine(Frame(index, time.monotonic(), image))


def _row(**values: Any) -> dict[str, Any]:
    """One result row; every column present, no ``None`` (Ray Data wants one type a column)."""
    row = {
        "video": -1,
        "range": -1,
        "attempt": 0,
        "position": -1,
        "detected": -1,
        "kind": "frame",
        "ok": True,
        "error": "",
        "detections": "[]",
        "inference_ms": 0.0,
        "busy_ms": 0.0,
        "digest": "",
        "width": 0,
        "height": 0,
        "actor": "",
    }
    row.update(values)
    return row


def _columns(rows: list[dict[str, Any]]) -> dict[str, np.ndarray]:
    keys = _row().keys()
    return {k: np.asarray([r[k] for r in rows]) for k in keys}


class ImageActor(_ModelActor):
    """Batches of ``{position, path}`` → one result row per file."""

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        rows = []
        for position, path in zip(batch["position"], batch["path"], strict=True):
            t0 = time.perf_counter()
            image, reason = read_image(str(path))
            if image is None:
                rows.append(
                    _row(position=int(position), ok=False, error=reason or "?", actor=self.name)
                )
                continue
            detections, inference_ms = self.detect(int(position), image)
            rows.append(
                _row(
                    position=int(position),
                    detected=int(position),
                    detections=detections_to_json(detections),
                    inference_ms=inference_ms,
                    busy_ms=(time.perf_counter() - t0) * 1e3,
                    width=image.shape[1],
                    height=image.shape[0],
                    actor=self.name,
                )
            )
        return _columns(rows)


class RangeActor(_ModelActor):
    """Batches of ``{video, range, attempt, path, start, stop, mode}`` → rows per frame, streamed.

    Besides its frames, a range returns a ``probe`` row (the digest of frame ``start - 1``
    after the seek) and an ``end`` row (its last frame and that frame's digest, or the reason
    it could not be read), for the driver's check that the ranges join exactly.
    """

    def __call__(self, batch: dict[str, np.ndarray]) -> Iterator[dict[str, np.ndarray]]:
        for video, rng, attempt, path, start, stop, mode in zip(
            batch["video"],
            batch["range"],
            batch["attempt"],
            batch["path"],
            batch["start"],
            batch["stop"],
            batch["mode"],
            strict=True,
        ):
            yield from self._range(
                int(video),
                int(rng),
                int(attempt),
                str(path),
                int(start),
                None if int(stop) < 0 else int(stop),
                str(mode),
            )

    def _range(
        self, video: int, rng: int, attempt: int, path: str, start: int, stop: int | None, mode: str
    ) -> Iterator[dict[str, np.ndarray]]:
        reader = RangeReader(path, start, stop, mode)
        ids = {"video": video, "range": rng, "attempt": attempt, "actor": self.name}
        rows: list[dict[str, Any]] = []
        probe_sent = False
        last: tuple[int, np.ndarray] | None = None
        carried: tuple[str, int] = ("[]", start)
        t0 = time.perf_counter()
        for index, image in reader.frames():
            if not probe_sent and reader.probe_digest is not None:
                rows.append(_probe_row(ids, start, reader.probe_digest))
            probe_sent = True
            inference_ms = 0.0
            if index % self.every == 0:  # ranges start on multiples of detect_every
                detections, inference_ms = self.detect(index, image)
                carried = (detections_to_json(detections), index)
            rows.append(
                _row(
                    **ids,
                    position=index,
                    detections=carried[0],
                    detected=carried[1],
                    inference_ms=inference_ms,
                    busy_ms=(time.perf_counter() - t0) * 1e3,
                    width=image.shape[1],
                    height=image.shape[0],
                )
            )
            last = (index, image)
            if len(rows) >= RANGE_CHUNK_FRAMES:
                yield _columns(rows)
                rows = []
            t0 = time.perf_counter()
        if not probe_sent and reader.probe_digest is not None:
            rows.append(_probe_row(ids, start, reader.probe_digest))
        # The end row: the range's last frame and its digest (the next range's probe must
        # match it), or the reason the range could not be read.
        rows.append(
            _row(
                **ids,
                kind="end",
                ok=reader.error is None,
                error=reader.error or "",
                position=last[0] if last else start - 1,
                digest=frame_digest(last[1]) if last else "",
            )
        )
        yield _columns(rows)


def _probe_row(ids: dict[str, Any], start: int, digest: str) -> dict[str, Any]:
    """The digest of the frame before the range, to prove the seek joined up."""
    return _row(**ids, position=start - 1, kind="probe", digest=digest)
