"""The ``run`` command on the Ray engine: the local run's inputs, outputs and record, on actors.

:func:`run_ray` is what :func:`detector.app.run_app` calls for ``run.engine: ray``. It lists
the work (image files, or videos cut into frame ranges), starts or joins Ray, and lets
:class:`~detector.distributed.runner.RayRunner` stream the actors' detections back in order.
The driver writes every output itself through the app's own sinks and renderer, so the files
are the local engine's: when an output needs pixels (video, images, window) the driver reads
each image again, or decodes the video once in order, and draws on it; when only records are
written (JSON lines) pixels never leave the actors. A folder of videos gives one sub-folder
per video. ``run.json`` adds the engine, the cluster, the actors and each actor's throughput.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable, Iterable
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from detector.config import Config
from detector.distributed.actors import detections_from_json
from detector.distributed.media import read_image
from detector.distributed.meter import ActorMeter
from detector.distributed.options import ModelSpec, RayOptions
from detector.distributed.ranges import FrameRange, split_ranges
from detector.distributed.runner import RayRunner, VideoJob
from detector.errors import ConfigError, DetectorError, ModelError, SourceError
from detector.fps import RunStats, Samples
from detector.labels import LabelMap, load_label_map
from detector.outputs import RUN_JSON, describe_outputs, make_run_dir, open_outputs, write_json
from detector.outputs.summary import now_iso, print_summary, versions
from detector.render import Renderer, RenderOptions
from detector.signals import StopSignals
from detector.sources import open_source
from detector.sources.spec import SourceSpec, expand_sources
from detector.types import Frame, FrameResult, SourceInfo, SourceKind

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Video:
    path: Path
    name: str
    info: SourceInfo
    run_name: str
    error: str | None = None  # why it cannot be opened (a folder's other videos go on)


def ray_options(config: Config) -> RayOptions:
    """The ``run.ray_*`` keys as :class:`RayOptions`."""
    rc = config.run
    return RayOptions(
        address=rc.ray_address,
        actors=rc.ray_actors,
        batch_size=rc.ray_batch_size,
        cpus_per_actor=rc.ray_cpus_per_actor,
        gpus_per_actor=rc.ray_gpus_per_actor,
        ranges_per_video=rc.ray_ranges_per_video,
    )


def model_spec(config: Config, class_ids: frozenset[int] | None) -> ModelSpec:
    """How each actor loads the model: the ``model.*`` keys, one TF thread per reserved CPU."""
    mc, dc = config.model, config.detect
    threads = mc.intra_op_threads or max(1, int(config.run.ray_cpus_per_actor))
    return ModelSpec(
        path=Path(mc.path),
        loader={
            "signature": mc.signature,
            "device": mc.device,
            "allow_memory_growth": mc.allow_memory_growth,
            "intra_op_threads": threads,
            "inter_op_threads": mc.inter_op_threads,
            "allow_unsafe_ops": mc.allow_unsafe_ops,
            "precision": mc.precision,
            "backend": mc.backend,
            "cache_dir": mc.cache_dir,
        },
        tensors=(
            mc.input_tensor,
            mc.boxes_tensor,
            mc.scores_tensor,
            mc.classes_tensor,
            mc.num_tensor,
        ),
        threshold=dc.threshold,
        class_ids=class_ids,
        max_boxes=dc.max_boxes,
        warmup_runs=max(1, config.run.warmup_frames),
        detect_every=dc.detect_every,
    )


@dataclass(frozen=True)
class _Plan:
    """What a Ray run reads: image files (one image source), or videos (one or several)."""

    info: SourceInfo
    run_name: str
    files: list[tuple[Path, str]] | None = None
    videos: list[_Video] | None = None
    many: bool = False  # several videos: a sub-folder each, as the local engine does


def _plan(uris: tuple[str, ...]) -> _Plan:
    """Classify the sources (a folder of videos expands to its videos, as for ``local``).

    Raises:
        ConfigError: A camera or stream, or image sources mixed with others (exit 2).
        SourceError: The one source cannot be opened.
    """
    specs = expand_sources(uris)
    live = [s for s in specs if s.kind in (SourceKind.CAMERA, SourceKind.STREAM)]
    if live:
        raise ConfigError(
            f"run.engine 'ray' reads files, not a {live[0].kind} ({live[0].shown!r})",
            hint="use --engine local for cameras and streams; ray takes image folders, globs, "
            "images, video files and folders of videos",
        )
    many = len(specs) > 1 or len(uris) > 1 or specs[0].uri != str(uris[0]).strip()
    if all(s.kind is SourceKind.VIDEO for s in specs):
        videos = [_video(s, folder=many) for s in specs]
        total = sum(v.info.frame_count or 0 for v in videos)
        uri = specs[0].uri if not many else ", ".join(uris)
        info = SourceInfo(uri, SourceKind.VIDEO, False, None, None, None, total or None)
        if not many:
            info = videos[0].info
        name = specs[0].run_name if len(uris) == 1 else "sources"
        return _Plan(info, name, videos=videos, many=many)
    if len(specs) > 1:
        raise ConfigError(
            "run.engine 'ray' takes one image source (a folder, a glob or an image), or video "
            f"files; got {len(specs)} sources with images among them",
            hint="run the image source on its own, or use --engine local",
        )
    with open_source(specs[0]) as source:
        files: list[tuple[Path, str]] = source.files  # type: ignore[attr-defined]
        return _Plan(source.info, specs[0].run_name, files=files)


def _video(spec: SourceSpec, *, folder: bool) -> _Video:
    """A video's facts; among several, one that cannot be opened is kept with its reason."""
    assert spec.path is not None
    try:
        with open_source(spec) as source:
            i = source.info
    except SourceError as exc:
        if not folder:
            raise
        info = SourceInfo(spec.uri, SourceKind.VIDEO, False)
        return _Video(spec.path, spec.shown, info, spec.run_name, error=exc.message)
    info = SourceInfo(spec.uri, SourceKind.VIDEO, False, i.width, i.height, i.fps, i.frame_count)
    return _Video(spec.path, spec.shown, info, spec.run_name)


def _stand_in(width: int, height: int) -> np.ndarray:
    """A frame-sized black image that takes no memory (its pixels stayed on the actor)."""
    return np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (max(height, 1), max(width, 1), 3))


class _RecordWriter:
    """The renderer's place when no output needs pixels: each sink gets the result only."""

    def __init__(self, sinks: Iterable[Any], guard: StopSignals) -> None:
        self.sinks = list(sinks)
        self.guard = guard
        self.frames = 0

    def __call__(self, result: FrameResult) -> bool:
        self.guard.deferring = True  # a signal waits until the frame is in every output
        try:
            for sink in self.sinks:
                sink.write(result, None)
            self.frames += 1
        finally:
            self.guard.deferring = self.guard.pending
        return not self.guard.pending


class _Progress:
    """One progress display: a log line every ``interval_s`` (Ray's own bars are off).

    Rates count from the job's start, the actors' start-up included: results arrive in
    bursts, so a rate between two bursts would promise too much.
    """

    def __init__(self, total: int | None, unit: str, interval_s: float) -> None:
        self.total, self.unit, self.interval_s = total, unit, interval_s
        self.started = time.monotonic()
        self.next_s = self.started + interval_s
        self.done = 0

    def tick(self, failed: int) -> None:
        now = time.monotonic()
        self.done += 1
        if now < self.next_s and self.done != self.total:
            return
        self.next_s = now + self.interval_s
        rate = self.done / max(now - self.started, 1e-9)
        of = f"/{self.total}" if self.total else ""
        eta = f", ETA {(self.total - self.done) / rate:.0f} s" if self.total and rate > 0 else ""
        bad = f" ({failed} unreadable)" if failed else ""
        log.info("ray: %d%s %s%s, %.1f/s%s", self.done, of, self.unit, bad, rate, eta)


class _Tally:
    """The run's numbers, kept as the driver writes."""

    def __init__(self) -> None:
        self.started = time.monotonic()
        self.read = 0
        self.written = 0
        self.inferences = 0
        self.inference_ms = Samples()

    def frame(self, inference_ms: float | None) -> None:
        self.written += 1
        if inference_ms is not None:
            self.inferences += 1
            self.inference_ms.add(inference_ms)

    def stats(self, skipped: int, interrupted: bool = False) -> RunStats:
        """The run's numbers; ``fps`` is frames over the job's whole time, the actors' start
        included (results arrive in bursts, so a rate between results means little; the
        per-actor rates in ``run.json`` are the steady figures)."""
        now = time.monotonic()
        elapsed = now - self.started
        return RunStats(
            frames_read=self.read,
            frames_processed=self.written,
            frames_dropped=0,
            frames_skipped=skipped,
            inferences=self.inferences,
            inference_ms_mean=self.inference_ms.mean(),
            inference_ms_p50=self.inference_ms.percentile(50),
            fps=self.written / elapsed if elapsed > 0 else 0.0,
            elapsed_s=elapsed,
            interrupted=interrupted,
        )


def _result(frame: Frame, row: dict[str, Any]) -> FrameResult:
    detected = int(row["detected"])
    fresh = detected == int(row["position"])
    detections = detections_from_json(str(row["detections"]))
    return FrameResult(
        frame,
        detections,
        fresh,
        frame.index if fresh else detected,
        float(row["inference_ms"]) if fresh else None,
    )


def run_ray(config: Config, *, out: TextIO | None = None) -> RunStats:
    """Run the detection app on Ray actors; see the module docstring.

    Raises:
        ConfigError: Ray is not installed, or the source is a camera or stream (exit 2).
        DetectorError: The model cannot load in an actor, Ray fails, a video cannot be read
            whole (exit 1); unreadable image files are reported and skipped.
        KeyboardInterrupt: Ctrl-C or SIGTERM, after the outputs and ``run.json`` were written.
    """
    from detector.distributed.session import import_ray, ray_session
    from detector.model.loader import model_path_exists

    ray = import_ray()
    out = out if out is not None else sys.stdout
    mc = config.model
    if not model_path_exists(mc.path):
        raise ModelError(
            f"model '{mc.path}' does not exist",
            hint="run 'python main.py fetch' for the default model, or set "
            "model.path (--model) to a frozen .pb, SavedModel or checkpoint folder",
        )
    labels = load_label_map(mc.labels) if mc.labels is not None else LabelMap({})
    class_ids = labels.resolve_classes(config.detect.classes)
    plan = _plan(config.source.uris)
    files, videos, info = plan.files, plan.videos, plan.info
    if files is not None and config.detect.detect_every > 1:
        raise ConfigError(
            "detect.detect_every > 1 is for videos with run.engine 'ray': "
            "each image is detected on its own",
            hint="set detect.detect_every to 1 or use --engine local",
        )
    options = ray_options(config)
    mspec = model_spec(config, class_ids)
    record: dict[str, Any] = {
        "status": "running",
        "started": now_iso(),
        "argv": sys.argv[1:],
        "engine": "ray",
    }
    t0 = time.monotonic()
    with ray_session(options) as cluster, StopSignals().installed() as stop:
        ray_start_s = time.monotonic() - t0
        run_dir = make_run_dir(config.output.dir, config.output.name or plan.run_name)
        meter = ActorMeter()
        failures: list[dict[str, str]] = []
        record.update(
            run_dir=str(run_dir),
            config_file=str(config.path) if config.path else None,
            config=config.to_dict(),
            source=asdict(info),
            model={
                "path": str(mc.path),
                "backend": mc.backend,
                "device": mc.device,
                "precision": mc.precision,
                "intra_op_threads": mspec.loader["intra_op_threads"],
            },
            labels={"path": str(mc.labels) if mc.labels else None, "classes": len(labels)},
            class_filter=sorted(class_ids) if class_ids else None,
            versions=versions(),
        )
        ray_record: dict[str, Any] = {
            **asdict(options),
            **cluster,
            "ray_start_s": round(ray_start_s, 3),
        }
        record["ray"] = ray_record
        stats: RunStats | None = None
        tally = _Tally()
        sinks: dict[str, Any] = {}
        runner = RayRunner(ray, mspec, options, meter)
        try:
            if files is not None:
                stats = _run_images(
                    config, run_dir, labels, info, files, runner, stop, tally, failures, sinks
                )
            else:
                assert videos is not None
                stats = _run_videos(
                    config,
                    run_dir,
                    labels,
                    videos,
                    runner,
                    stop,
                    tally,
                    failures,
                    record,
                    many=plan.many,
                )
            if stop.pending:
                stats = tally.stats(len(failures), interrupted=True)
                raise KeyboardInterrupt
            if videos is not None and failures:
                names = ", ".join(f"'{f['file']}'" for f in failures)
                raise SourceError(
                    f"{len(failures)} of {len(videos)} videos could not be read whole: {names}",
                    hint="run.json lists each one's reason",
                )
            record["status"] = "ok"
        except KeyboardInterrupt:
            stats = stats or tally.stats(len(failures), interrupted=True)
            record["status"] = "interrupted"
            raise
        except DetectorError as exc:
            record.update(status="error", error=str(exc))
            raise
        except Exception as exc:
            record.update(status="error", error=f"{type(exc).__name__}: {exc}")
            raise
        finally:
            stats = stats or tally.stats(len(failures))
            record["finished"] = now_iso()
            if files is not None:
                record["outputs"] = describe_outputs(sinks)
            record["failed"] = failures
            ray_record.update(meter.to_dict(), elapsed_s=round(time.monotonic() - t0, 3))
            record["stats"] = stats.to_dict()
            write_json(run_dir / RUN_JSON, record)
            print_summary(out, record, stats, run_dir)
            _print_ray_summary(out, ray_record, failures)
    return stats


def _print_ray_summary(
    out: TextIO, ray_record: dict[str, Any], failures: list[dict[str, str]]
) -> None:
    lines = [
        f"  ray: {ray_record.get('actors_seen', 0)} actors on {ray_record.get('nodes', '?')} "
        f"node(s) ({ray_record.get('address')}); start {ray_record['ray_start_s']:.1f} s, "
        f"first result after {ray_record.get('first_result_s') or 0:.1f} s"
    ]
    for a in ray_record.get("per_actor", []):
        rate = a["items_per_busy_s"]
        lines.append(
            f"    actor {a['actor']}: {a['items']} items, "
            f"{rate if rate is not None else '-'} per busy second"
        )
    for f in failures[:10]:
        lines.append(f"  failed: {f['file']}: {f['reason']}")
    if len(failures) > 10:
        lines.append(f"  ... and {len(failures) - 10} more failures (run.json lists them all)")
    print("\n".join(lines), file=out, flush=True)


def _writer(
    config: Config, labels: LabelMap, sinks: dict[str, Any], stop: StopSignals
) -> tuple[Callable[[FrameResult], bool], bool]:
    """The renderer when an output needs pixels, else the records-only writer."""
    oc = config.output
    needs_pixels = "window" in sinks or "video" in sinks or "images" in sinks
    if not needs_pixels:
        return _RecordWriter(sinks.values(), stop), False
    dc = config.detect
    return Renderer(
        labels,
        list(sinks.values()),
        RenderOptions(
            hud=oc.hud,
            report_every=dc.report_every,
            report_threshold=dc.report_threshold,
            fps_interval_s=config.run.fps_interval_s,
        ),
        guard=stop,
    ), True


def _run_images(
    config: Config,
    run_dir: Path,
    labels: LabelMap,
    info: SourceInfo,
    files: list[tuple[Path, str]],
    runner: RayRunner,
    stop: StopSignals,
    tally: _Tally,
    failures: list[dict[str, str]],
    sinks: dict[str, Any],
) -> RunStats:
    limit = config.run.max_frames
    progress = _Progress(len(files), "images", config.run.fps_interval_s)
    with ExitStack() as outputs:
        sinks.update(open_outputs(config.output, run_dir, labels, info, outputs))
        write, needs_pixels = _writer(config, labels, sinks, stop)
        log.info("running %s (%d images) on Ray → %s", info.uri, len(files), run_dir)
        try:
            for row in runner.images([p for p, _ in files]):
                path, name = files[int(row["position"])]
                progress.tick(len(failures))
                reason = None if row["ok"] else str(row["error"])
                image: np.ndarray | None = None
                if reason is None:
                    if needs_pixels:
                        image, reason = read_image(path)
                    else:
                        image = _stand_in(int(row["width"]), int(row["height"]))
                if image is None:
                    failures.append({"file": name, "reason": reason or "?"})
                    log.warning("skipping %s: %s", path, reason)
                    continue
                tally.read += 1  # as the local engine counts: images that decoded
                index = tally.written
                result = _result(
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


def _run_videos(
    config: Config,
    run_dir: Path,
    labels: LabelMap,
    videos: list[_Video],
    runner: RayRunner,
    stop: StopSignals,
    tally: _Tally,
    failures: list[dict[str, str]],
    record: dict[str, Any],
    many: bool,
) -> RunStats:
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
    total = sum(min(v.info.frame_count or 0, config.run.max_frames or sys.maxsize) for v in videos)
    progress = _Progress(total or None, "frames", config.run.fps_interval_s)
    single = not many
    current: _VideoOutput | None = None
    try:
        for v, item in runner.videos(jobs):
            if current is None or current.number != v:
                if current is not None:
                    current.close(record)
                current = _VideoOutput(
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
                progress.tick(len(failures))
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


class _VideoOutput:
    """One video's outputs: its sinks, the driver's own in-order decode when pixels are needed."""

    def __init__(
        self,
        number: int,
        video: _Video,
        folder: Path,
        config: Config,
        labels: LabelMap,
        stop: StopSignals,
        tally: _Tally,
        ranges: list[FrameRange],
    ) -> None:
        self.number, self.video, self.folder, self.tally = number, video, folder, tally
        self.ranges = [[r.start, r.stop] for r in ranges]
        self.stack = ExitStack()
        self.status = "running"
        self.error: str | None = None
        self.frames = 0
        self.sinks = open_outputs(config.output, folder, labels, video.info, self.stack)
        self.write_result, needs_pixels = _writer(config, labels, self.sinks, stop)
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
            image = _stand_in(int(row["width"]), int(row["height"]))
        result = _result(Frame(index, time.monotonic(), image, None), row)
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
