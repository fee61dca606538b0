"""Sources made of image files: a folder (recursive), a glob, a single image; natural order.

Files are read by the one image reader (``detector.imagefiles``, safe for any file name).
An unreadable file is skipped with its real reason (``missing``, ``not a regular file``,
``permission denied``, ``empty``, ``truncated``, ``decode failed``), logged and listed.
"""

from __future__ import annotations

import glob as globlib
import logging
import os
import re
from pathlib import Path

import numpy as np

from detector.errors import SourceError
from detector.imagefiles import read_image
from detector.paths import display_path
from detector.sources.base import Source
from detector.sources.spec import IMAGE_EXTENSIONS
from detector.sources.walk import walk_files
from detector.types import SourceInfo, SourceKind

log = logging.getLogger(__name__)


class ImageSource(Source):
    """A list of image files, read in order; unreadable ones are skipped and counted."""

    def __init__(self, paths: list[Path], info: SourceInfo, root: Path | None) -> None:
        super().__init__(info)
        self._paths = paths
        self._root = root
        self._next = 0

    @property
    def files(self) -> list[tuple[Path, str]]:
        """Every file in reading order, with the name outputs give it (the Ray engine's list)."""
        root = self._root
        return [(p, p.relative_to(root).as_posix() if root else p.name) for p in self._paths]

    def _read(self) -> tuple[np.ndarray, str | None] | None:
        while self._next < len(self._paths):
            path = self._paths[self._next]
            self._next += 1
            image, reason = read_image(path)
            if image is None:
                shown = display_path(path)
                self.skipped += 1
                self.skips.append((shown, reason or "decode failed"))
                log.warning("skipping %s: %s", shown, reason)
                continue
            name = path.relative_to(self._root).as_posix() if self._root else path.name
            return image, display_path(name)
        return None


def natural_key(text: str) -> list[object]:
    """Sort key that orders ``img2`` before ``img10`` (case-insensitive)."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", text)]


def _image_source(paths: list[Path], uri: str, root: Path | None) -> ImageSource:
    info = SourceInfo(uri, SourceKind.IMAGES, False, None, None, None, len(paths))
    log.info("images %s: %d files", uri, len(paths))
    return ImageSource(paths, info, root)


def open_folder(folder: Path, uri: str) -> ImageSource:
    walk = walk_files(folder, IMAGE_EXTENSIONS)
    paths = sorted(walk.files, key=lambda p: natural_key(p.relative_to(folder).as_posix()))
    for path, reason in walk.skipped:
        log.warning("skipping %s: %s", display_path(path), reason)
    if not paths:
        left_out = f" ({len(walk.skipped)} entries left out, see the log)" if walk.skipped else ""
        raise SourceError(
            f"cannot open folder {uri!r}: empty folder, it holds no images{left_out}",
            hint=f"put images ({', '.join(IMAGE_EXTENSIONS[:6])}, ...) in it, or give a video file",
        )
    source = _image_source(paths, uri, folder)
    source.skips.extend((display_path(p), reason) for p, reason in walk.skipped)
    return source


def open_glob(pattern: str) -> ImageSource:
    matches = [Path(p) for p in globlib.glob(os.path.expanduser(pattern), recursive=True)]
    paths = sorted(
        (p for p in matches if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS),
        key=lambda p: natural_key(p.as_posix()),
    )
    if not paths:
        what = f"{len(matches)} files but no images" if matches else "nothing"
        raise SourceError(
            f"cannot open glob {pattern!r}: it matches {what}",
            hint="quote the pattern so the shell does not expand it, e.g. 'photos/*.jpg'",
        )
    return _image_source(paths, pattern, None)


def open_single_image(path: Path, uri: str) -> ImageSource:
    image, reason = read_image(path)
    if image is None:
        raise SourceError(
            f"cannot open image {display_path(uri)!r}: {reason}",
            hint="check the file is a complete JPEG/PNG/... image",
        )
    return _image_source([path], uri, None)
