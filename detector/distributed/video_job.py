"""Videos on Ray: frame ranges out to the actors, frames back in order into each video's
outputs (the driver decodes the video itself when an output needs its pixels)."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from typing import Any

from detector.config import Config
from detector.distributed.plan import Video
from detector.distributed.ranges import FrameRange, split_ranges
from detector.distributed.runner import RayRunner, VideoJob
from detector.distributed.writing import Tally, frame_result, stand_in, writer
from detector.errors import SourceError
from detector.labels import LabelMap
from detector.outputs import describe_outputs, make_run_dir, open_outputs
from detector.outputs.record import RunRecord, failure
from detector.pipeline.signals import StopSignals
from detector.sources import open_source
from detector.types import Frame, RunStats

log = logging.getLogger(__name__)


@dataclass
class VideoOutcome:
    """How one video ended: the local engine's per-source facts (see ``source_entry``)."""

    name: str
    status: str = "skipped"
    error: str | None = None
    record: RunRecord | None = None
    stats: RunStats | None = None
    ranges: list[list[int | None]] | None = None


def run_videos(
    config: Config,
    record: RunRecord,
    labels: LabelMap,
    videos: list[Video],
    outcomes: list[VideoOutcome],
    runner: RayRunner,
    stop: StopSignals,
    many: bool,
) -> None:
    """Detect every frame of ``videos`` on the actors, a video cut into frame ranges; write
    each video's frames in order into its outputs (with ``many``, a sub-folder and a
    ``run.json`` each, children of ``record``; else into ``record``'s folder).

    A video that cannot be opened or read whole is ``failed`` and the others go on; with a
    single video, that raises ``SourceError`` once its outputs are closed. ``outcomes`` (one
    per video) receives how each ended.
    """
    _unopened(record, videos, outcomes)
    todo = [i for i, v in enumerate(videos) if v.error is None]
    jobs = [
        VideoJob(videos[i].path, _ranges(config, runner, n, videos[i])) for n, i in enumerate(todo)
    ]
    started: float | None = time.monotonic()  # the first video's time includes the start-up
    current: VideoOutput | None = None
    try:
        for v, item in runner.videos(jobs):
            if current is None or current.number != v:
                if current is not None:
                    current.close()
                i = todo[v]
                sub = (
                    record.child(make_run_dir(record.run_dir, videos[i].run_name))
                    if many
                    else record
                )
                current = VideoOutput(v, videos[i], sub, outcomes[i], jobs[v].ranges, many, started)
                current.open(config, labels, stop)
                started = None
            if isinstance(item, dict):
                if not current.write(item):
                    break
                continue
            current.finished(item)
            current = None
    except BaseException as exc:
        if current is not None:
            status, current.outcome.error = failure(exc)
            current.outcome.status = "failed" if status == "error" else status
        raise
    finally:
        stop.deferring = True  # closing the sinks finalizes the files
        if current is not None:
            current.close()
    if not many and outcomes[0].error is not None:  # one video: it failed
        raise SourceError(f"video {videos[0].name!r} could not be read whole: {outcomes[0].error}")


def _unopened(record: RunRecord, videos: list[Video], outcomes: list[VideoOutcome]) -> None:
    """Videos that could not be opened: failed, each with a record saying why."""
    for video, outcome in zip(videos, outcomes, strict=True):
        if video.error is not None:
            log.error("video %s: %s (the other videos go on)", video.path, video.error)
            outcome.status, outcome.error = "failed", video.error
            outcome.record = record.child(make_run_dir(record.run_dir, video.run_name))
            outcome.record.not_started(video.name, "video", video.error)


def _ranges(config: Config, runner: RayRunner, number: int, video: Video) -> list[FrameRange]:
    return split_ranges(
        number,
        video.info.frame_count,
        runner.options.video_ranges,
        detect_every=config.detect.detect_every,
        min_frames=8,
        limit=config.run.max_frames,
    )


class VideoOutput:
    """One video's outputs and record: its sinks, the driver's own in-order decode when pixels
    are needed; ``child``: its record is a sub-folder's own ``run.json``."""

    def __init__(
        self,
        number: int,
        video: Video,
        record: RunRecord,
        outcome: VideoOutcome,
        ranges: list[FrameRange],
        child: bool,
        started: float | None,
    ) -> None:
        self.number, self.video, self.record, self.outcome = number, video, record, outcome
        self.child = child
        self.tally = Tally(started)
        self.stack = ExitStack()
        self.sinks: dict[str, Any] = {}
        self.source: Any = None
        outcome.status, outcome.record = "interrupted", record
        outcome.ranges = [[r.start, r.stop] for r in ranges]

    def open(self, config: Config, labels: LabelMap, stop: StopSignals) -> None:
        """Start the record and open the outputs (and the driver's decode if pixels are needed)."""
        video, record = self.video, self.record
        record.update(source=asdict(video.info))
        if self.child:
            record.start()
        self.sinks = open_outputs(
            config.output,
            record.run_dir,
            labels,
            video.info,
            self.stack,
            max_frames=config.run.max_frames,
            min_score=config.detect.threshold,
        )
        self.write_result, needs_pixels = writer(config, labels, self.sinks, stop)
        if needs_pixels:
            self.source = self.stack.enter_context(open_source(str(video.path)))
        log.info(
            "video %s (%s frames) on Ray → %s",
            video.path,
            video.info.frame_count or "?",
            record.run_dir,
        )

    def write(self, row: dict[str, Any]) -> bool:
        index = int(row["position"])
        self.tally.read += 1
        if self.source is not None:
            item = self.source.read()
            if item is None:
                raise SourceError(
                    f"video '{self.video.path}' ended at frame {index} on the "
                    "driver, though the actors read further"
                )
            image = item[0]
        else:
            image = stand_in(int(row["width"]), int(row["height"]))
        result = frame_result(Frame(index, time.monotonic(), image, None), row)
        keep = self.write_result(result)
        self.tally.frame(result.inference_ms)
        return keep

    def finished(self, reason: str | None) -> None:
        """The video's last frame came (``reason``: why it was not read whole)."""
        if reason is not None:
            log.error("video %s: %s", self.video.path, reason)
        self.outcome.status = "ok" if reason is None else "failed"
        self.outcome.error = reason
        self.close()

    def close(self) -> None:
        """Finalize this video's outputs and its record."""
        try:
            self.stack.close()
        finally:
            outcome = self.outcome
            stats = self.tally.stats(0, interrupted=outcome.status == "interrupted")
            outcome.stats = stats
            self.record.update(outputs=describe_outputs(self.sinks), stats=stats.to_dict())
            if outcome.error is not None:
                self.record.update(error=outcome.error)
            if self.child:
                self.record.finish(
                    {"ok": "ok", "interrupted": "interrupted"}.get(outcome.status, "error")
                )
