"""What a Ray run reads: one image source's files, or videos with their facts.

Sources go through :func:`detector.sources.spec.expand_sources`, as for the local engine, so
a folder of videos is its videos; cameras and streams are refused (the Ray engine reads files).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from detector.errors import ConfigError, SourceError
from detector.sources import open_source
from detector.sources.spec import SourceSpec, expand_sources
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
    run_name: str
    files: list[tuple[Path, str]] | None = None
    videos: list[Video] | None = None
    many: bool = False  # several videos: a sub-folder each, as the local engine does


def plan(uris: tuple[str, ...]) -> Plan:
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
        videos = [video(s, folder=many) for s in specs]
        total = sum(v.info.frame_count or 0 for v in videos)
        uri = specs[0].uri if not many else ", ".join(uris)
        info = SourceInfo(uri, SourceKind.VIDEO, False, None, None, None, total or None)
        if not many:
            info = videos[0].info
        name = specs[0].run_name if len(uris) == 1 else "sources"
        return Plan(info, name, videos=videos, many=many)
    if len(specs) > 1:
        raise ConfigError(
            "run.engine 'ray' takes one image source (a folder, a glob or an image), or video "
            f"files; got {len(specs)} sources with images among them",
            hint="run the image source on its own, or use --engine local",
        )
    with open_source(specs[0]) as source:
        files: list[tuple[Path, str]] = source.files  # type: ignore[attr-defined]
        return Plan(source.info, specs[0].run_name, files=files)


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
