"""The driver's side of a Ray run: hand the work to the actors, stream the results back in order.

:class:`RayRunner` sends a list of image paths in batches to a pool of plain actors
(:mod:`pool`; nothing of Ray Data to import or start), and videos cut into frame ranges
through a Ray Data pipeline (``from_items`` → ``map_batches`` on an actor pool of
:mod:`actors`: a range's frames stream back as they are detected), and yields the result rows
in order (:mod:`assemble`). Ray's errors become the project's: a model that fails to load in
an actor is a :class:`~detector.errors.ModelError` with the actor's message.
"""

from __future__ import annotations

import json
import logging
import math
import re
import warnings
from collections.abc import Generator, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from detector.distributed.actors import START_ERROR_MARKER, ImageActor, RangeActor
from detector.distributed.assemble import ImageOrder, Row, VideoOrder
from detector.distributed.media import SEEK_FAST, SEEK_SEQUENTIAL
from detector.distributed.meter import ActorMeter
from detector.distributed.options import ModelSpec, RayOptions
from detector.distributed.pool import ActorPool, split
from detector.distributed.ranges import FrameRange
from detector.distributed.session import import_ray_data
from detector.errors import DetectorError, ModelError

log = logging.getLogger(__name__)

_MAX_BLOCKS = 10_000


class RayEngineError(DetectorError):
    """Ray failed while running the job (an actor or a node died, a task failed)."""


@dataclass(frozen=True)
class VideoJob:
    """One video of the run and its ranges."""

    path: Path
    ranges: list[FrameRange]


def _error_from_ray(exc: BaseException) -> DetectorError:
    """The project's error for what Ray raised: the actor's own message when it has one."""
    text = str(exc)
    found = re.search(re.escape(START_ERROR_MARKER) + r"(\{.*\})", text)
    if found:
        info = json.loads(found.group(1))
        return ModelError(
            f"the model could not be loaded on Ray actor {info['actor']}: {info['message']}",
            hint=info.get("hint"),
        )
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    last = lines[-1] if lines else type(exc).__name__
    return RayEngineError(
        f"the Ray job failed: {type(exc).__name__}: {last}",
        hint="run again with --debug for Ray's full report; Ray's logs are "
        "in /tmp/ray/session_latest/logs",
    )


class RayRunner:
    """Runs the actor pool over a run's work and yields results in order.

    Args:
        ray: The imported ``ray`` module (see :func:`session.import_ray`).
        spec: How each actor loads the model and filters detections.
        options: Actor count, batch size, resources.
        meter: Receives every result row (per-actor throughput).
    """

    def __init__(self, ray: Any, spec: ModelSpec, options: RayOptions, meter: ActorMeter) -> None:
        self.ray = ray
        self.spec = spec
        self.options = options
        self.meter = meter

    def _map(
        self, items: list[dict[str, Any]], actor: type, batch_size: int, blocks: int
    ) -> Iterator[Row]:
        """Result rows of ``actor`` over ``items`` on Ray Data, as they arrive."""
        ray, opt = self.ray, self.options
        import_ray_data(ray)
        ds = ray.data.from_items(items, override_num_blocks=max(1, min(blocks, _MAX_BLOCKS)))
        with warnings.catch_warnings():
            # max_restarts=0: Ray's default restarts dead actors (and says so on stderr for
            # ours); a model that failed to load fails the same way again, and a lost node
            # should fail the run with a message rather than go on silently. Ray 2.60 takes
            # it only through the deprecated remote-args keywords.
            warnings.simplefilter("ignore")
            ds = ds.map_batches(
                actor,
                fn_constructor_kwargs={"spec": self.spec},
                compute=ray.data.ActorPoolStrategy(size=min(opt.actors, max(1, len(items)))),
                batch_size=batch_size,
                batch_format="numpy",
                num_cpus=opt.cpus_per_actor,
                num_gpus=opt.gpus_per_actor or None,
                max_restarts=0,
            )
        yield from self._rows(ds.iter_batches(batch_size=None, batch_format="numpy"))

    def _pooled(self, items: list[dict[str, Any]], actor: type, batches: int) -> Iterator[Row]:
        """Result rows of ``actor`` over ``items`` on plain actors (:mod:`pool`), as they
        arrive: no Ray Data to import, plan or start in the driver or the actors."""
        opt = self.options
        options: dict[str, Any] = {"num_cpus": opt.cpus_per_actor}
        if opt.gpus_per_actor:
            options["num_gpus"] = opt.gpus_per_actor
        actors = ActorPool(self.ray, actor, self.spec, min(opt.actors, len(items)), options)
        try:
            yield from self._rows(actors.map(split(items, batches)))
        finally:
            actors.close()

    def _rows(self, batches: Iterable[dict[str, Any]]) -> Iterator[Row]:
        """The rows of result batches (columns), metered; Ray's errors as the project's."""
        try:
            for batch in batches:
                columns = list(batch)
                for i in range(len(batch[columns[0]])):
                    row = {
                        c: batch[c][i].item() if hasattr(batch[c][i], "item") else batch[c][i]
                        for c in columns
                    }
                    if row["kind"] == "frame" and row["ok"]:
                        self.meter.add(
                            str(row["actor"]), float(row["busy_ms"]), float(row["inference_ms"])
                        )
                    yield row
        except DetectorError:
            raise
        except Exception as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise _error_from_ray(exc) from exc

    def images(self, paths: list[Path]) -> Iterator[Row]:
        """One row per file, in the order of ``paths`` (``ok`` False: ``error`` says why)."""
        if not paths:
            return
        items = [{"position": i, "path": str(p)} for i, p in enumerate(paths)]
        order = ImageOrder(len(items))
        batches = max(self.options.actors, math.ceil(len(items) / self.options.batch_size))
        for row in self._pooled(items, ImageActor, batches):
            order.add(row)
            yield from order.ready()
        if order.missing:
            raise RayEngineError(
                f"no result came back for {len(order.missing)} files "
                f"(first: {paths[order.missing[0]]})"
            )

    def videos(self, jobs: list[VideoJob]) -> Generator[tuple[int, Row | str | None], None, None]:
        """``(video, frame row)`` for every frame, video by video in frame order; after a
        video's last frame, ``(video, None)`` when it was read whole, else ``(video, reason)``.
        """
        orders = [VideoOrder(job.ranges) for job in jobs]
        current = 0
        work = [(r, 0, SEEK_FAST) for job in jobs for r in job.ranges]
        while work:
            items = [
                {
                    "video": r.video,
                    "range": r.index,
                    "attempt": attempt,
                    "path": str(jobs[r.video].path),
                    "start": r.start,
                    "stop": -1 if r.stop is None else r.stop,
                    "mode": mode,
                }
                for r, attempt, mode in work
            ]
            for row in self._map(items, RangeActor, 1, len(items)):
                orders[int(row["video"])].add(row)
                current = yield from self._drain(orders, current)
            retries = [
                (r, attempt, SEEK_SEQUENTIAL) for o in orders for r, attempt in o.take_retries()
            ]
            for r, _a, _m in retries:
                log.warning(
                    "video %s: the range from frame %d did not join exactly after "
                    "seeking; reading it again from the first frame",
                    jobs[r.video].path,
                    r.start,
                )
            work = retries
        current = yield from self._drain(orders, current)
        while current < len(orders):
            yield current, orders[current].finish() or "its results are incomplete"
            current += 1

    @staticmethod
    def _drain(
        orders: list[VideoOrder], current: int
    ) -> Generator[tuple[int, Row | str | None], None, int]:
        """Write what is ready, video by video; returns the video now being written."""
        while current < len(orders):
            order = orders[current]
            for row in order.ready():
                yield current, row
            if not order.done:
                break
            yield current, order.finish()
            current += 1
        return current
