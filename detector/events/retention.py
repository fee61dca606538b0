"""Retention of a folder of clips or snapshots: by age, then by total size, oldest first.

File names start with their wall-clock time (``20261206T101502.123Z-...``), so name order is
time order; age is read from each file's modification time.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

log = logging.getLogger(__name__)


def prune(folder: Path, max_age_h: float | None, max_size_mb: float | None) -> int:
    """Delete files of ``folder`` older than ``max_age_h`` hours, then the oldest until the
    rest fit in ``max_size_mb``; returns how many were deleted (None limits: none)."""
    if max_age_h is None and max_size_mb is None:
        return 0
    try:
        files = sorted((p for p in Path(folder).iterdir() if p.is_file()), key=lambda p: p.name)
        sizes = {p: p.stat() for p in files}
    except OSError as exc:
        log.warning("retention: cannot read '%s': %s", folder, exc)
        return 0
    doomed: list[Path] = []
    if max_age_h is not None:
        oldest = time.time() - max_age_h * 3600
        doomed = [p for p in files if sizes[p].st_mtime < oldest]
    if max_size_mb is not None:
        left = [p for p in files if p not in doomed]
        total = sum(sizes[p].st_size for p in left)
        limit = max_size_mb * 1024 * 1024
        for p in left:
            if total <= limit:
                break
            doomed.append(p)
            total -= sizes[p].st_size
    deleted = 0
    for p in doomed:
        try:
            p.unlink()
            deleted += 1
        except OSError as exc:
            log.warning("retention: cannot delete '%s': %s", p, exc)
    if deleted:
        log.info("retention: %d old file(s) deleted from %s", deleted, folder)
    return deleted
