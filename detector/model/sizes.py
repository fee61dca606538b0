"""Size checks before allocation: refuse what memory or protobuf cannot hold, before reading it.

A model file states sizes it may not hold: a ``Const`` whose shape says a billion elements
with one value stored, an HDF5 dataset of fill values, a zip member claiming gigabytes.
Each reader asks here before it allocates, so a lie ends in a sentence, not in the
out-of-memory killer; and a frozen graph that cannot exist (protobuf refuses messages over
2 GB) is refused before TensorFlow spends a minute building it.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from detector.errors import ModelError
from detector.model.session import import_tf

#: protobuf refuses to serialize or parse a message of 2 GiB or more.
PROTOBUF_LIMIT = 2**31 - 1
_MIB = 2**20


def available_memory() -> int:
    """Bytes of memory free now (``SC_AVPHYS_PAGES``); a large figure when unknown."""
    try:
        return int(os.sysconf("SC_PAGE_SIZE")) * int(os.sysconf("SC_AVPHYS_PAGES"))
    except (ValueError, OSError, AttributeError):
        return 2**62


def human(nbytes: int) -> str:
    """``1536`` → ``'1.5 KiB'``."""
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.1f} {unit}" if unit != "B" else f"{int(size)} B"
        size /= 1024
    return f"{size:.1f} TiB"


def check_allocation(nbytes: int, what: str, *, stored: int | None = None) -> None:
    """Refuse to allocate ``nbytes`` for ``what`` when memory cannot hold it.

    Args:
        nbytes: The size the file declares.
        what: The tensor or dataset and its file, for the message.
        stored: The bytes the file really holds for it, when known (quoted: a small
            ``stored`` beside a huge ``nbytes`` is a size field that lies, or a fill).

    Raises:
        ModelError: More than half of the free memory would be needed.
    """
    free = available_memory()
    if nbytes <= free // 2:
        return
    held = f" (the file stores {human(stored)} of it)" if stored is not None else ""
    raise ModelError(
        f"{what} declares {human(nbytes)}{held}: more than this machine's free memory "
        f"({human(free)}) can hold",
        hint="the file is damaged or states a size it does not hold; if it is real, "
        "run on a machine with more memory",
    )


def tensor_proto_bytes(proto: Any) -> int:
    """Bytes a ``TensorProto`` expands to (its shape times its dtype size), before making it."""

    dims = [max(int(d.size), 0) for d in proto.tensor_shape.dim]
    elements = int(np.prod(dims, dtype=np.float64)) if dims else 1
    try:
        itemsize = import_tf().dtypes.as_dtype(proto.dtype).size
    except (TypeError, ValueError):
        itemsize = 8
    return elements * max(int(itemsize), 1)


def check_tensor_proto(proto: Any, what: str) -> None:
    """Refuse to materialise a ``TensorProto`` larger than free memory (see
    :func:`check_allocation`); what it stores is its ``ByteSize``."""
    check_allocation(tensor_proto_bytes(proto), what, stored=proto.ByteSize())


def tensor_array(proto: Any, what: str) -> Any:
    """``tensor_util.MakeNdarray(proto)`` after :func:`check_tensor_proto`."""
    from tensorflow.python.framework import tensor_util

    check_tensor_proto(proto, what)
    return tensor_util.MakeNdarray(proto)


def check_frozen_size(variable_bytes: dict[str, int], what: str) -> None:
    """Refuse to freeze when the constants would exceed protobuf's 2 GB message limit.

    Args:
        variable_bytes: Variable name → its size in bytes.
        what: The source, for the message.

    Raises:
        ModelError: Naming the largest variables and the formats that can hold them.
    """
    total = sum(variable_bytes.values())
    if total < PROTOBUF_LIMIT - 64 * _MIB:  # room for the graph's other nodes
        return
    largest = sorted(variable_bytes.items(), key=lambda kv: -kv[1])[:3]
    shown = ", ".join(f"{name} {human(size)}" for name, size in largest)
    raise ModelError(
        f"cannot freeze {what}: its variables hold {human(total)} ({shown}), and a frozen "
        "GraphDef is one protobuf message, which cannot exceed 2 GB",
        hint="keep the weights outside the graph: convert to a SavedModel (--to saved_model) "
        "or a checkpoint (--to checkpoint), or keep the largest as variables (--exclude NAME)",
    )
