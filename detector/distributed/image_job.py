"""An image source on Ray: paths out to the actors, results back in order into the outputs."""

from __future__ import annotations

import logging
import time
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from detector.config import Config
from detector.distributed.runner import RayRunner
from detector.distributed.writing import Tally, frame_result, stand_in, writer
from detector.imagefiles import read_image
from detector.labels import LabelMap
from detector.outputs import describe_outputs, open_outputs
from detector.outputs.record import RunRecord
from detector.paths import display_path
from detector.pipeline.signals import StopSignals
from detector.types import Frame, RunStats, SourceInfo

log = logging.getLogger(__name__)


def run_images(
    config: Config,
    record: RunRecord,
    labels: LabelMap,
    info: SourceInfo,
    files: list[tuple[Path, str]],
    runner: RayRunner,
    stop: StopSignals,
    tally: Tally,
) -> RunStats:
    """Detect every file of an image source on the actors; write the results in file order.

    Unreadable files are skipped with their reason, as the local engine skips them
    (``skipped.csv``); ``record`` receives the outputs and the skipped files however it ends.
    """
    limit = config.run.max_frames
    skips: list[tuple[str, str]] = []
    sinks: dict[str, Any] = {}
    try:
        with ExitStack() as outputs:
            sinks = open_outputs(
                config.output,
                record.run_dir,
                labels,
                info,
                outputs,
                max_frames=limit,
                min_score=config.detect.threshold,
            )
            write, needs_pixels = writer(config, labels, sinks, stop)
            log.info("running %s (%d images) on Ray → %s", info.uri, len(files), record.run_dir)
            try:
                for row in runner.images([p for p, _ in files]):
                    path, name = files[int(row["position"])]
                    image, reason = _pixels(row, path, needs_pixels)
                    if image is None:
                        skips.append((display_path(path), reason or "decode failed"))
                        log.warning("skipping %s: %s", display_path(path), reason)
                        continue
                    tally.read += 1  # as the local engine counts: images that decoded
                    index = tally.written
                    result = frame_result(
                        Frame(index, time.monotonic(), image, name),
                        {**row, "position": index, "detected": index},
                    )
                    keep = write(result)
                    tally.frame(result.inference_ms)
                    if not keep or (limit is not None and tally.written >= limit):
                        break
            finally:
                stop.deferring = True  # closing the sinks finalizes the files
    finally:
        record.update(outputs=describe_outputs(sinks))
        record.skipped(skips)
    return tally.stats(len(skips))


def _pixels(
    row: dict[str, Any], path: Path, needs_pixels: bool
) -> tuple[np.ndarray | None, str | None]:
    """The image to write (the file read again when an output needs pixels), or the reason."""
    if not row["ok"]:
        return None, str(row["error"])
    if needs_pixels:
        return read_image(path)
    return stand_in(int(row["width"]), int(row["height"])), None
