"""Videos on Ray: frame ranges out to the actors, frames back in order into each video's
outputs (the driver decodes the video itself when an output needs its pixels)."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from dataclasses import asdict
from pathlib import Path
from typing import Any

from detector.config import Config
from detector.distributed.plan import Video
from detector.distributed.ranges import FrameRange, split_ranges
from detector.distributed.runner import RayRunner, VideoJob
from detector.distributed.writing import Tally, frame_result, stand_in, writer
from detector.errors import SourceError
from detector.labels import LabelMap
from detector.outputs import RUN_JSON, describe_outputs, make_run_dir, open_outputs, write_json
from detector.pipeline.signals import StopSignals
from detector.sources import open_source
from detector.types import Frame, RunStats

log = logging.getLogger(__name__)


def run_videos(
    config: Config,
    run_dir: Path,
    labels: LabelMap,
    videos: list[Video],
    runner: RayRunner,
    stop: StopSignals,
    tally: Tally,
    failures: list[dict[str, str]],
    record: dict[str, Any],
    many: bool,
) -> RunStats:
    """Detect every frame of ``videos`` on the actors, a video cut into frame ranges; write
    each video's frames in order into its outputs (a sub-folder each when ``many``).

    A video that cannot be opened or read whole is appended to ``failures`` and the others go
    on; with a single video, that raises ``SourceError`` once its outputs are closed.
    """
    opt = runner.options
    record["videos"] = []
    for video in videos:
        if video.error is not None:
            failures.append({"file": video.name, "reason": video.error})
            log.error("video %s: %s (the other videos go on)", video.path, video.error)
            entry = {"file": video.name, "status": "error", "error": video.error, "frames": 0}
            folder = make_run_dir(run_dir, video.run_name)
            write_json(folder / RUN_JSON, {**entry, "engine": "ray", "source": asdict(video.info)})
            record["videos"].append({**entry, "folder": folder.name})
    videos = [v for v in videos if v.error is None]
    jobs = []
    for i, video in enumerate(videos):
        ranges = split_ranges(
            i,
            video.info.frame_count,
            opt.video_ranges,
            detect_every=config.detect.detect_every,
            min_frames=8,
            limit=config.run.max_frames,
        )
        jobs.append(VideoJob(video.path, ranges))
    single = not many
    current: VideoOutput | None = None
    try:
        for v, item in runner.videos(jobs):
            if current is None or current.number != v:
                if current is not None:
                    current.close(record)
                current = VideoOutput(
                    v,
                    videos[v],
                    run_dir if single else make_run_dir(run_dir, videos[v].run_name),
                    config,
                    labels,
                    stop,
                    tally,
                    jobs[v].ranges,
                )
            if isinstance(item, dict):
                tally.read += 1
                if not current.write(item):
                    break
                continue
            if item is not None:  # the video could not be read whole
                failures.append({"file": videos[v].name, "reason": item})
                log.error("video %s: %s", videos[v].path, item)
            current.status = "ok" if item is None else "error"
            current.error = item
            current.close(record)
            current = None
    finally:
        stop.deferring = True  # closing the sinks finalizes the files
        if current is not None:
            current.close(record)
    if single and failures:  # one video: it failed
        raise SourceError(
            f"video {videos[0].name!r} could not be read whole: {failures[0]['reason']}"
        )
    if single:
        record["outputs"] = record["videos"][0].get("outputs", {}) if record["videos"] else {}
    return tally.stats(0)


class VideoOutput:
    """One video's outputs: its sinks, the driver's own in-order decode when pixels are needed."""

    def __init__(
        self,
        number: int,
        video: Video,
        folder: Path,
        config: Config,
        labels: LabelMap,
        stop: StopSignals,
        tally: Tally,
        ranges: list[FrameRange],
    ) -> None:
        self.number, self.video, self.folder, self.tally = number, video, folder, tally
        self.ranges = [[r.start, r.stop] for r in ranges]
        self.stack = ExitStack()
        self.status = "running"
        self.error: str | None = None
        self.frames = 0
        self.sinks = open_outputs(
            config.output,
            folder,
            labels,
            video.info,
            self.stack,
            max_frames=config.run.max_frames,
            min_score=config.detect.threshold,
        )
        self.write_result, needs_pixels = writer(config, labels, self.sinks, stop)
        self.source = (
            self.stack.enter_context(open_source(str(video.path))) if needs_pixels else None
        )
        log.info(
            "video %s (%s frames) on Ray → %s", video.path, video.info.frame_count or "?", folder
        )

    def write(self, row: dict[str, Any]) -> bool:
        index = int(row["position"])
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
        self.frames += 1
        return keep

    def close(self, record: dict[str, Any]) -> None:
        """Finalize this video's outputs; its entry in ``record`` (and, for one of several
        videos, a ``run.json`` of its own in its sub-folder, as the local engine writes)."""
        try:
            self.stack.close()
        finally:
            entry = {
                "file": self.video.name,
                "status": self.status,
                "error": self.error,
                "frames": self.frames,
                "ranges": self.ranges,
                "outputs": describe_outputs(self.sinks),
            }
            if self.folder != Path(record["run_dir"]):
                sub = {**entry, "engine": "ray", "source": asdict(self.video.info)}
                write_json(self.folder / RUN_JSON, sub)
            record["videos"].append({**entry, "folder": self.folder.name})
