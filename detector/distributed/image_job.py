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
from detector.outputs import open_outputs
from detector.pipeline.signals import StopSignals
from detector.types import Frame, RunStats, SourceInfo

log = logging.getLogger(__name__)


def run_images(
    config: Config,
    run_dir: Path,
    labels: LabelMap,
    info: SourceInfo,
    files: list[tuple[Path, str]],
    runner: RayRunner,
    stop: StopSignals,
    tally: Tally,
    failures: list[dict[str, str]],
    sinks: dict[str, Any],
) -> RunStats:
    """Detect every file of an image source on the actors; write the results in file order.

    Unreadable files are appended to ``failures`` (name and reason) and skipped, as the local
    engine skips them; ``sinks`` receives the open outputs (for ``run.json``).
    """
    limit = config.run.max_frames
    with ExitStack() as outputs:
        sinks.update(
            open_outputs(
                config.output,
                run_dir,
                labels,
                info,
                outputs,
                max_frames=config.run.max_frames,
                min_score=config.detect.threshold,
            )
        )
        write, needs_pixels = writer(config, labels, sinks, stop)
        log.info("running %s (%d images) on Ray → %s", info.uri, len(files), run_dir)
        try:
            for row in runner.images([p for p, _ in files]):
                path, name = files[int(row["position"])]
                reason = None if row["ok"] else str(row["error"])
                image: np.ndarray | None = None
                if reason is None:
                    if needs_pixels:
                        image, reason = read_image(path)
                    else:
                        image = stand_in(int(row["width"]), int(row["height"]))
                if image is None:
                    failures.append({"file": name, "reason": reason or "?"})
                    log.warning("skipping %s: %s", path, reason)
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
    return tally.stats(len(failures))
