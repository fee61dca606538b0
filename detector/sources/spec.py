"""The one reading of a source URI: ``parse_source`` turns what the user typed into a typed spec.

Everything downstream (opening the source, naming the run folder, deciding live vs file,
masking credentials in logs) reads the :class:`SourceSpec`, never the raw string. This
module is pure string and path logic (no OpenCV), so the config can use it too.
"""

from __future__ import annotations

import glob as globlib
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from detector.errors import redact
from detector.types import SourceKind

STREAM_SCHEMES = (
    "rtsp://",
    "rtsps://",
    "rtmp://",
    "http://",
    "https://",
    "udp://",
    "tcp://",
    "srt://",
)
# An http(s) URL ending like this is a remote *file*: read it losslessly, not as a live feed.
VIDEO_EXTENSIONS = (
    ".mp4",
    ".avi",
    ".mkv",
    ".mov",
    ".webm",
    ".m4v",
    ".mpg",
    ".mpeg",
    ".wmv",
    ".flv",
    ".ts",
)
IMAGE_EXTENSIONS = (
    ".jpg",
    ".jpeg",
    ".jpe",
    ".png",
    ".bmp",
    ".dib",
    ".tif",
    ".tiff",
    ".webp",
    ".pbm",
    ".pgm",
    ".ppm",
    ".pnm",
    ".jp2",
)

_CAMERA_DEVICE = re.compile(r"/dev/video\d+")
_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._-]+")
_GLOB = re.compile(r"[*?\[]")


def is_local_path(uri: str) -> bool:
    """True when ``uri`` names a file, folder or glob (not a camera index or a URL)."""
    text = uri.strip()
    return not (text.isdigit() or "://" in text)


@dataclass(frozen=True)
class SourceSpec:
    """A source as the user named it, classified once.

    Attributes:
        uri: The text the user gave (may hold credentials: use ``shown`` in messages).
        kind: Camera, video file, network stream or images.
        live: Frames arrive in real time (cameras, live streams): keep the newest, count drops.
        shown: ``uri`` with any password masked.
        device: The camera index or ``/dev/videoN`` path (cameras only).
        path: The file or folder (videos, images), or the glob pattern's text (images).
        images: For images: ``folder``, ``glob`` or ``file``.
    """

    uri: str
    kind: SourceKind
    live: bool
    shown: str
    device: int | str | None = None
    path: Path | None = None
    images: str | None = None

    @property
    def run_name(self) -> str:
        """A run folder name: ``camera0``, the stream's host, a file's stem, a folder's name
        (for globs, the folder holding the pattern)."""
        if self.kind is SourceKind.CAMERA:
            name = (
                f"camera{self.device}"
                if isinstance(self.device, int)
                else Path(str(self.device)).name
            )
        elif self.kind is SourceKind.STREAM:
            parsed = urlparse(self.uri)
            name = parsed.hostname or parsed.scheme or "stream"
        else:
            p = Path(self.uri.strip())
            while _GLOB.search(p.name) and p.parent != p:
                p = p.parent
            name = p.name if self.images in ("folder", "glob") or not p.suffix else p.stem
        return _UNSAFE_NAME.sub("_", name).strip("._") or "run"


def parse_source(uri: str | int) -> SourceSpec:
    """Classify ``uri``: camera, stream URL, image folder / glob / file, or video file.

    ``"0"`` (or an int, or ``/dev/videoN``) is a camera; ``rtsp://``, ``http(s)://`` and other
    stream URLs are streams (live, except http(s) URLs ending in a video file extension); a
    folder, a glob pattern or an image file gives images; any other file is a video. A path
    that does not exist is classified by its looks (a video unless its suffix is an image's),
    so opening it reports the missing file.
    """
    text = str(uri).strip()
    shown = redact(text)
    if isinstance(uri, int) or text.isdigit():
        return SourceSpec(text, SourceKind.CAMERA, True, shown, device=int(text))
    if _CAMERA_DEVICE.fullmatch(text):
        return SourceSpec(text, SourceKind.CAMERA, True, shown, device=text)
    if text.lower().startswith(STREAM_SCHEMES):
        url = text.split("?", 1)[0].lower()
        remote_file = url.startswith(("http://", "https://")) and url.endswith(VIDEO_EXTENSIONS)
        return SourceSpec(text, SourceKind.STREAM, not remote_file, shown)
    path = Path(text).expanduser()
    if path.is_dir():
        return SourceSpec(text, SourceKind.IMAGES, False, shown, path=path, images="folder")
    if not path.exists() and globlib.has_magic(text):
        return SourceSpec(text, SourceKind.IMAGES, False, shown, path=path, images="glob")
    if path.suffix.lower() in IMAGE_EXTENSIONS:
        return SourceSpec(text, SourceKind.IMAGES, False, shown, path=path, images="file")
    return SourceSpec(text, SourceKind.VIDEO, False, shown, path=path)


def _natural(name: str) -> list[object]:
    return [int(t) if t.isdigit() else t.lower() for t in re.split(r"(\d+)", name)]


def video_files(folder: Path) -> list[Path]:
    """The video files directly in ``folder`` (by extension), in natural order."""
    try:
        entries = list(folder.iterdir())
    except OSError:
        return []
    videos = [p for p in entries if p.suffix.lower() in VIDEO_EXTENSIONS and p.is_file()]
    return sorted(videos, key=lambda p: _natural(p.name))


def expand_sources(uris: str | int | list[str] | tuple[str, ...]) -> list[SourceSpec]:
    """Every source the user named, a folder of videos expanded to one source per video.

    A folder that holds videos and no image is read as its videos (natural order, one run
    each); a folder holding images stays one image source (any videos in it are left out,
    with a warning from the caller's log). Anything else is :func:`parse_source`'s.
    """
    items = [uris] if isinstance(uris, (str, int)) else list(uris)
    specs: list[SourceSpec] = []
    for uri in items:
        spec = parse_source(uri)
        if spec.kind is SourceKind.IMAGES and spec.images == "folder" and spec.path is not None:
            videos = video_files(spec.path)
            if videos and not any(
                p.suffix.lower() in IMAGE_EXTENSIONS for p in spec.path.iterdir()
            ):
                specs.extend(parse_source(str(p)) for p in videos)
                continue
        specs.append(spec)
    return specs
