"""The one walk over a folder tree: it always ends, and says what it left out and why.

Iterative (no recursion limit), each folder entered once (by device and inode, so a link
loop or a link back up the tree is seen and skipped), links to folders followed, unreadable
folders skipped with their reason, a limit on the number of files, and the folders of
earlier runs (a ``run.json`` inside) left out: an output folder under an image folder is
never read back as input. Entries that are not folders are listed whatever they are (a FIFO,
a dangling link): the reader skips each with its own reason without opening it.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path

RUN_MARKER = "run.json"
"""A folder holding this file is a run folder: its images are outputs, not inputs."""


@dataclass
class Walk:
    """What a walk found: the files kept and the entries left out, each with its reason."""

    files: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)


def walk_files(root: Path, suffixes: tuple[str, ...], max_files: int | None = None) -> Walk:
    """Every regular file under ``root`` whose suffix (lower case) is in ``suffixes``.

    Args:
        root: The folder to walk (followed if it is a link).
        suffixes: Kept suffixes, lower case with the dot (``.jpg``).
        max_files: Stop after this many files (the rest is reported as one skipped entry).
    """
    out = Walk()
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
        except OSError as exc:
            out.skipped.append((folder, f"cannot read folder: {exc.strerror or exc}"))
            continue
        if (st.st_dev, st.st_ino) in seen:
            out.skipped.append((folder, "folder already walked (a link loop or a second link)"))
            continue
        seen.add((st.st_dev, st.st_ino))
        try:
            with os.scandir(folder) as it:
                entries = sorted(it, key=lambda e: e.name)
        except OSError as exc:
            out.skipped.append((folder, f"cannot read folder: {exc.strerror or exc}"))
            continue
        if folder != root and any(e.name == RUN_MARKER for e in entries):
            out.skipped.append((folder, f"a run folder ({RUN_MARKER} inside): outputs, not inputs"))
            continue
        subfolders: list[Path] = []
        for entry in entries:
            path = Path(entry.path)
            if _is_folder(entry):
                subfolders.append(path)
            elif path.suffix.lower() not in suffixes:
                continue
            elif max_files is not None and len(out.files) >= max_files:
                out.skipped.append((folder, f"more than {max_files} files: the rest left out"))
                return out
            else:
                out.files.append(path)
        stack.extend(reversed(subfolders))  # depth first, in name order
    return out


def _is_folder(entry: os.DirEntry[str]) -> bool:
    """A folder, or a link to one."""
    try:
        return stat.S_ISDIR(entry.stat(follow_symlinks=True).st_mode)
    except OSError:
        return False
