"""A camera or stream on Ray: a long-lived actor running the local engine's run for one source.

:class:`CameraWorker` is created once per live source by the driver
(:mod:`detector.distributed.fleet`) as a Ray actor that Ray restarts when its process or node
dies. It loads its own model from the run's :class:`~detector.model.options.ModelOptions`
and runs :func:`detector.pipeline.source_run.run_spec` - the local engine's unit of work
(reconnecting capture, detect every N, tracking, zones / events, render, sinks, the record on
every exit path) - into one *segment* folder per call (``part-001``, ``part-002`` after a
restart, ...), so a restart never writes into the files of the process that died. Each
segment's ``run.json`` names the process and Ray node it ran on. Its methods run on the
actor's threads: :meth:`status` and :meth:`stop` answer while :meth:`run` runs.

Where a segment is written (``run.ray_outputs``): ``shared`` - straight into the source's
folder, a path every node sees (NFS, ...); ``driver`` - into a scratch folder on the worker's
node whose new bytes go back to the driver with every :meth:`status` reply (and through
:meth:`pull` once the segment ends; :mod:`detector.distributed.mirror`), so only the driver
needs the run folder.
"""

from __future__ import annotations

import os
import resource
import shutil
import socket
import tempfile
import threading
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from detector.config import Config
from detector.distributed.mirror import FolderTail, Piece
from detector.labels import LabelMap
from detector.model.options import ModelOptions, load_with
from detector.outputs.record import RunRecord, masked, versions
from detector.outputs.web.hub import Hub
from detector.outputs.web.metrics import FrameRows
from detector.pipeline.prelude import model_entry
from detector.pipeline.source_run import SourceJob, model_threshold, run_spec, track_settings
from detector.sources.spec import SourceSpec

#: A live source's segment folders: ``part-001``, ``part-002``, ... (one per worker process).
PART_DIR = "part-{:03d}"


@dataclass(frozen=True)
class LiveJob:
    """What a live source's worker needs (plain values: Ray ships it to the actor).

    Attributes:
        config: The run's configuration.
        labels: The label map.
        class_ids: Label-map ids kept (``None``: all).
        model: How the model loads (:meth:`ModelOptions.on_actor`).
        spec: The source.
        index: The source's position among the run's sources.
        source_dir: The source's folder on the driver (the nodes' too, with shared
            outputs); segments go inside.
        header: The start of every segment's record (the run's header).
        scratch: With outputs sent to the driver: the segments' folder on the worker's node,
            relative to its temp folder (empty: written to ``source_dir``).
    """

    config: Config
    labels: LabelMap
    class_ids: frozenset[int] | None
    model: ModelOptions
    spec: SourceSpec
    index: int
    source_dir: str
    header: dict[str, Any]
    scratch: str = ""


def where() -> dict[str, Any]:
    """This process: host, PID, and its Ray node (id, address, custom resources)."""
    import ray as _ray  # the actor runs inside Ray

    ray: Any = _ray
    node_id = ray.get_runtime_context().get_node_id()
    node: dict[str, Any] = next((n for n in ray.nodes() if n.get("NodeID") == node_id), {})
    custom = sorted(
        k
        for k in node.get("Resources", {})
        if k not in ("CPU", "GPU", "memory", "object_store_memory")
        and not k.startswith("node:")
        and not k.startswith("accelerator_type:")
    )
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "node_id": node_id,
        "node_ip": node.get("NodeManagerAddress"),
        "node_resources": custom,
    }


def _peak_rss_mb() -> float:
    """This process's peak resident memory so far, in MB."""
    return round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0, 1)


class CameraWorker:
    """One live source's worker (the body of a Ray actor; see the module docstring)."""

    def __init__(self, job: LiveJob) -> None:
        t0 = time.monotonic()
        self.job = job
        self.halt = threading.Event()
        self.place = where()
        self.part = 0
        track = track_settings(job.config)
        self.rss_mb = {"before_model": _peak_rss_mb()}
        model: Any = load_with(job.model)
        warmup_ms = model.warm_up(runs=1)
        self.rss_mb["with_model"] = _peak_rss_mb()
        self.model = model
        self.model_entry = model_entry(job.model, model, warmup_ms)
        from detector.engine import Engine

        threshold = model_threshold(job.config, job.labels, track)
        engine = Engine(model, threshold, job.class_ids, job.config.detect.max_boxes)
        self.source_job = SourceJob(job.config, job.labels, engine, track)
        self.hub = Hub()
        spec = job.spec
        self.feed = self.hub.add_feed(spec.run_name, spec.shown, live=True)
        self.rows = FrameRows()  # each frame's timings, for the driver's /metrics
        self.hub.observers.append(self.rows)
        self.tails: dict[int, FolderTail] = {}  # outputs sent to the driver: by segment
        self.tails_lock = threading.Lock()  # status and pull run on different threads
        self.start_s = round(time.monotonic() - t0, 3)

    def where(self) -> dict[str, Any]:
        """This worker's process and node, and how long it took to start (model loaded)."""
        place = {**self.place, "start_s": self.start_s, "part": self.part, "rss_mb": self.rss_mb}
        if self.job.scratch and self.part:
            place["scratch"] = str(self.segment_folder(self.part))
        return place

    def segment_folder(self, part: int) -> Path:
        """Where segment ``part`` is written on this node (see the module docstring)."""
        if self.job.scratch:
            return Path(tempfile.gettempdir()) / self.job.scratch / PART_DIR.format(part)
        return Path(self.job.source_dir) / PART_DIR.format(part)

    def run(self, part: int, max_frames: int | None) -> dict[str, Any]:
        """Run the source into segment ``part`` until it ends, fails or :meth:`stop`; up to
        ``max_frames`` frames. Returns the segment's record (masked)."""
        self.part = part
        folder = self.segment_folder(part)
        folder.mkdir(parents=True)  # never an earlier segment's folder
        if self.job.scratch:
            with self.tails_lock:
                self.tails[part] = FolderTail(folder)
        header = dict(self.job.header)
        header.update(
            model=self.model_entry,
            versions=versions(),
            worker={**self.where(), "started": time.time()},
        )
        record = RunRecord(folder, header)
        config: Config = self.job.config
        config = replace(config, run=replace(config.run, max_frames=max_frames))
        job = replace(self.source_job, config=config)
        spec = self.job.spec
        try:
            run_spec(job, spec, record, feed=self.feed, halt=self.halt, index=self.job.index)
        except Exception as exc:
            if "finished" not in record.data:  # it failed before its run began
                record.not_started(spec.shown, str(spec.kind), exc)
            raise
        data: dict[str, Any] = masked(record.data)
        return data

    def stop(self) -> None:
        """End the run at the next frame; the outputs are finalized before :meth:`run` returns."""
        self.halt.set()

    def pull(self, part: int) -> list[Piece]:
        """Segment ``part``'s outputs not yet sent to the driver (some: call until empty)."""
        with self.tails_lock:
            tail = self.tails.get(part)
            return tail.pull() if tail is not None else []

    def drop(self, part: int) -> None:
        """Remove segment ``part``'s scratch folder (the driver holds all of it)."""
        with self.tails_lock:
            tail = self.tails.pop(part, None)
        if tail is not None:
            shutil.rmtree(tail.folder, ignore_errors=True)
            for empty in (tail.folder.parent, tail.folder.parent.parent):  # source, run
                try:
                    empty.rmdir()
                except OSError:  # another segment or source is still there
                    break

    def status(self, jpeg: bool = False) -> dict[str, Any]:
        """The source's figures as the web view has them, this worker's place, each frame's
        timings since the last call (``rows``), (with ``jpeg``) the latest annotated frame
        as JPEG bytes, and (outputs sent to the driver) the running segment's new bytes."""
        got = self.feed.jpeg() if jpeg else None
        part = self.part
        return {
            **self.feed.status(),
            **self.where(),
            "reconnects": self.feed.reconnects(),
            "counts": self.feed.counts(),
            "jpeg": got[1] if got is not None else None,
            "rows": self.rows.drain(),
            "pieces": (part, self.pull(part)) if self.job.scratch else None,
        }
