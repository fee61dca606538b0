"""Open Keras 3 files — ``.keras`` archives and ``.weights.h5`` — and rebuild their models safely.

A ``.keras`` file is a zip holding ``config.json`` (the architecture), ``model.weights.h5``
and ``metadata.json``. The archive's declared sizes are checked before anything is read or
extracted; the config is reviewed as data (:mod:`detector.model.keras_config`) and only a
config made of Keras' own classes is rebuilt, with Keras' ``safe_mode``. A ``.weights.h5``
holds no architecture: its model must come from the user's code (``--model FILE.py:FUNC``).
"""

from __future__ import annotations

import json
import shutil
import tempfile
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from detector.errors import ModelError
from detector.model.keras_config import (
    MAX_CONFIG_BYTES,
    KerasConfig,
    parse_config,
    refusal,
    review_config,
)
from detector.model.sizes import human
from detector.model.tf_errors import first_line

WEIGHTS_MEMBER = "model.weights.h5"
CONFIG_MEMBER = "config.json"
ZIP_MAGIC = b"PK\x03\x04"


@dataclass
class KerasArchive:
    """An opened ``.keras`` archive.

    Attributes:
        path: The archive.
        review: Its config, reviewed (``review.refused`` says what cannot be rebuilt).
        metadata: ``metadata.json`` (Keras version, date saved), if present.
        weights: The extracted ``model.weights.h5`` (removed when the archive is closed).
        members: The archive's member names and declared sizes.
    """

    path: Path
    review: KerasConfig
    metadata: dict[str, Any]
    weights: Path
    members: dict[str, int] = field(default_factory=dict)


def is_keras_archive(path: Path) -> bool:
    """Whether a file is a zip whose members include ``config.json`` and the weights."""
    try:
        with zipfile.ZipFile(path) as zf:
            names = set(zf.namelist())
    except (zipfile.BadZipFile, OSError, ValueError):
        return False
    return CONFIG_MEMBER in names and WEIGHTS_MEMBER in names


def _read_member(zf: zipfile.ZipFile, name: str, limit: int, what: str) -> bytes:
    info = zf.getinfo(name)
    if info.file_size > limit:
        raise ModelError(
            f"{what}: {name} declares {human(info.file_size)}, over the {human(limit)} accepted",
            hint="the archive is damaged or not a Keras model",
        )
    with zf.open(info) as f:
        return f.read(limit + 1)[:limit]


def _extract(zf: zipfile.ZipFile, name: str, folder: Path, what: str) -> Path:
    """Copy one member out, refusing when its declared size does not fit on the disk."""
    info = zf.getinfo(name)
    free = shutil.disk_usage(folder).free
    if info.file_size > free // 2:
        raise ModelError(
            f"{what}: {name} declares {human(info.file_size)}; the disk has {human(free)} free",
            hint="free some space (the weights are read from a temporary copy), or the "
            "archive states a size it does not hold",
        )
    out = folder / WEIGHTS_MEMBER
    with zf.open(info) as src, out.open("wb") as dst:
        shutil.copyfileobj(src, dst, 2**20)
    return out


@contextmanager
def open_keras(path: str | Path) -> Iterator[KerasArchive]:
    """Open a ``.keras`` archive: config reviewed, weights extracted to a temporary file.

    Raises:
        ModelError: Not a zip, members missing, sizes over the limits, config unreadable.
    """

    path = Path(path)
    what = f"Keras archive '{path}'"
    try:
        zf = zipfile.ZipFile(path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise ModelError(f"cannot open {what}: {exc}", hint="the file is damaged") from exc
    with zf, tempfile.TemporaryDirectory(prefix="detector-keras-") as tmp:
        names = set(zf.namelist())
        missing = [m for m in (CONFIG_MEMBER, WEIGHTS_MEMBER) if m not in names]
        if missing:
            raise ModelError(
                f"{what} lacks {missing}; it holds {sorted(names)[:8]}",
                hint="save the model again with model.save('model.keras')",
            )
        config = parse_config(_read_member(zf, CONFIG_MEMBER, MAX_CONFIG_BYTES, what), what)
        metadata: dict[str, Any] = {}
        if "metadata.json" in names:
            try:
                metadata = json.loads(_read_member(zf, "metadata.json", 2**20, what))
            except ValueError:
                metadata = {"unreadable": True}
        weights = _extract(zf, WEIGHTS_MEMBER, Path(tmp), what)
        members = {i.filename: i.file_size for i in zf.infolist()}
        yield KerasArchive(path, review_config(config), metadata, weights, members)


def rebuild(archive: KerasArchive) -> Any:
    """The archive's Keras model, rebuilt from its reviewed config with its weights.

    Raises:
        ModelError: The config names code (custom or lambda layers) or does not build.
    """
    import keras

    what = f"Keras archive '{archive.path}'"
    if archive.review.refused:
        raise refusal(archive.review, what)
    try:
        model = keras.saving.deserialize_keras_object(archive.review.config, safe_mode=True)
        model.load_weights(str(archive.weights))
    except Exception as exc:
        raise ModelError(
            f"cannot rebuild {what}: {type(exc).__name__}: {first_line(exc)}",
            hint="was it saved by a newer Keras? 'model inspect' still lists its layers "
            "and weights",
        ) from exc
    return model
