"""A folder copied to another machine while it is written: a worker's outputs sent to the driver.

With ``run.ray_outputs: driver`` a camera worker writes its segment into a scratch folder on
its own node and :class:`FolderTail` reads what is new there: the bytes appended to each file
since the last call, as :class:`Piece` values (plain data: Ray ships them back in the worker's
status replies). The driver writes them into the same file names under its own run folder with
:func:`apply`. Outputs grow by appending (JSON lines, the fragmented MP4, events), so a piece
is written at its offset in place and the driver's copy is readable at every moment, as the
worker's is; a file the worker replaces (``run.json`` rewritten atomically, the MP4 remuxed at
a clean close) is sent whole into a side file and renamed over the old copy once complete.
Dot files (the temp files of atomic writes) are not sent.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

#: Most bytes one call of :meth:`FolderTail.pull` returns (the rest comes with the next).
PULL_BYTES = 8 << 20
_SIDE = ".incoming"  # a replaced file's new copy at the driver, until complete


@dataclass(frozen=True)
class Piece:
    """Bytes of one file at one offset.

    Attributes:
        path: The file, relative to the folder (``/``-separated).
        offset: Where ``data`` goes in the file.
        data: The bytes.
        swap: The file replaced an earlier version: written beside it, renamed when ``done``.
        done: The last piece of a swapped file (its size reached).
    """

    path: str
    offset: int
    data: bytes
    swap: bool = False
    done: bool = False


@dataclass
class _Sent:
    inode: int
    size: int  # bytes sent so far
    swap: bool  # a later version of the file: sent beside it, renamed when complete


class FolderTail:
    """What is new in a folder since the last :meth:`pull` (see the module docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.sent: dict[str, _Sent] = {}

    def pull(self, budget: int = PULL_BYTES) -> list[Piece]:
        """The new bytes of every file, up to ``budget`` bytes in all."""
        pieces: list[Piece] = []
        for path in sorted(self._files()):
            if budget <= 0:
                break
            piece = self._piece(path, budget)
            if piece is not None:
                pieces.append(piece)
                budget -= len(piece.data)
        return pieces

    def _files(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return [
            p
            for p in self.folder.rglob("*")
            if not any(part.startswith(".") for part in p.relative_to(self.folder).parts)
            and p.is_file()
        ]

    def _piece(self, path: Path, budget: int) -> Piece | None:
        rel = path.relative_to(self.folder).as_posix()
        known = self.sent.get(rel)
        try:
            st = path.stat()
        except OSError:  # gone between the listing and now
            return None
        if known is not None and (known.inode, known.size) == (st.st_ino, st.st_size):
            return None  # unchanged: not opened (a folder of snapshots is walked each second)
        try:
            with path.open("rb") as f:
                st = os.fstat(f.fileno())
                sent = self.sent.get(rel)
                new = sent is None or sent.inode != st.st_ino or st.st_size < sent.size
                if sent is None or new:  # first seen, or replaced (new inode, or shorter)
                    sent = self.sent[rel] = _Sent(st.st_ino, 0, swap=rel in self.sent)
                f.seek(sent.size)
                data = f.read(min(budget, st.st_size - sent.size))
        except OSError:  # gone between the listing and the read: the next pull sees why
            return None
        if not data and not new:
            return None
        offset = sent.size
        sent.size += len(data)
        return Piece(rel, offset, data, swap=sent.swap, done=sent.size >= st.st_size)


def apply(folder: Path, pieces: list[Piece]) -> int:
    """Write ``pieces`` into ``folder`` (see the module docstring); the bytes written."""
    written = 0
    for piece in pieces:
        target = _inside(folder, piece.path)
        target.parent.mkdir(parents=True, exist_ok=True)
        into = target.with_name(target.name + _SIDE) if piece.swap else target
        with into.open("r+b" if into.exists() and piece.offset > 0 else "wb") as f:
            f.seek(piece.offset)
            f.write(piece.data)
        written += len(piece.data)
        if piece.swap and piece.done:
            os.replace(into, target)
    return written


def _inside(folder: Path, rel: str) -> Path:
    """``folder / rel``, refused when ``rel`` would leave ``folder``."""
    target = (folder / rel).resolve()
    if not target.is_relative_to(folder.resolve()) or target == folder.resolve():
        raise ValueError(f"a piece's path leaves the run folder: '{rel}'")
    return target
