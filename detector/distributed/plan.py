"""What a Ray run reads: one image source's files, or videos with their facts.

The sources come from the run's prelude (:mod:`detector.pipeline.prelude`), as for the local
engine, so a folder of videos is its videos; cameras and streams are refused (the Ray engine
reads files).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from detector.errors import ConfigError, SourceError
from detector.sources import open_source
from detector.sources.spec import SourceSpec
from detector.types import SourceInfo, SourceKind


@dataclass(frozen=True)
class Video:
    """One video of the run: its path, name as shown, facts, run folder name."""

    path: Path
    name: str
    info: SourceInfo
    run_name: str
    error: str | None = None  # why it cannot be opened (a folder's other videos go on)


@dataclass(frozen=True)
class Plan:
    """What a Ray run reads: image files (one image source), or videos (one or several)."""

    info: SourceInfo
    files: list[tuple[Path, str]] | None = None
    videos: list[Video] | None = None


def plan(specs: Sequence[SourceSpec], *, many: bool) -> Plan:
    """Classify the run's sources (a folder of videos already expanded, as for ``local``).

    Raises:
        ConfigError: A camera or stream, or image sources mixed with others (exit 2).
        SourceError: The one source cannot be opened.
    """
    live = [s for s in specs if s.kind in (SourceKind.CAMERA, SourceKind.STREAM)]
    if live:
        raise ConfigError(
            f"run.engine 'ray' reads files, not a {live[0].kind} ({live[0].shown!r})",
            hint="use --engine local for cameras and streams; ray takes image folders, globs, "
            "images, video files and folders of videos",
        )
    if all(s.kind is SourceKind.VIDEO for s in specs):
        videos = [video(s, folder=many) for s in specs]
        return Plan(videos[0].info, videos=videos)
    if len(specs) > 1:
        raise ConfigError(
            "run.engine 'ray' takes one image source (a folder, a glob or an image), or video "
            f"files; got {len(specs)} sources with images among them",
            hint="run the image source on its own, or use --engine local",
        )
    with open_source(specs[0]) as source:
        files: list[tuple[Path, str]] = source.files  # type: ignore[attr-defined]
        return Plan(source.info, files=files)


def video(spec: SourceSpec, *, folder: bool) -> Video:
    """A video's facts; among several, one that cannot be opened is kept with its reason."""
    assert spec.path is not None
    try:
        with open_source(spec) as source:
            i = source.info
    except SourceError as exc:
        if not folder:
            raise
        info = SourceInfo(spec.uri, SourceKind.VIDEO, False)
        return Video(spec.path, spec.shown, info, spec.run_name, error=exc.message)
    info = SourceInfo(spec.uri, SourceKind.VIDEO, False, i.width, i.height, i.fps, i.frame_count)
    return Video(spec.path, spec.shown, info, spec.run_name)
