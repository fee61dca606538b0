"""Restore a graph's variables from a checkpoint's values, with names and shapes checked first.

Values come from ``tf.train.load_checkpoint`` and are fed to each variable's initializer;
a ``.meta``'s own restore op is never run. ``--init-missing`` fills the variables a
``Saver(var_list=...)`` subset lacks, but never for a ``.meta`` from another model.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from detector.errors import CheckpointError
from detector.model.checkpoints import open_reader
from detector.model.tf_errors import first_line as _first_line

log = logging.getLogger(__name__)


def _refuse_foreign_graph(
    prefix: str,
    variables: Sequence[Any],
    shapes: dict[str, Any],
    missing: list[str],
    present: list[Any],
) -> None:
    """Refuse ``--init-missing`` when the graph is not the checkpoint's: a
    ``Saver(var_list=...)`` subset holds only variables of its graph, so values for
    variables the graph lacks (or none for any it has) mean another model's ``.meta``."""
    names = {v.op.name for v in variables}
    foreign = sorted(
        k for k in shapes if k not in names and "/.ATTRIBUTES/" not in k and not k.startswith("_")
    )
    if present and not foreign:
        return
    shown = ", ".join(foreign[:6]) + (f" and {len(foreign) - 6} more" if len(foreign) > 6 else "")
    why = (
        f"it holds {len(foreign)} variable(s) the graph does not have ({shown})"
        if foreign
        else "none of the graph's variables are in it"
    )
    raise CheckpointError(
        f"checkpoint '{prefix}' was not saved from this graph: {why}, and {len(missing)} of "
        "the graph's variables are missing; --init-missing would give them initial values "
        "and make a silently wrong model",
        hint="use the .meta written together with this checkpoint (model.ckpt-N.meta beside "
        "it), or the graph that built it (--graph)",
    )


def restore_variables(
    session: Any, variables: Sequence[Any], prefix: str, *, init_missing: bool = False
) -> list[str]:
    """Assign every variable its value read from the checkpoint at ``prefix``.

    A ``.meta``'s own restore op is never run (it names files and ops the graph chose):
    values come from ``tf.train.load_checkpoint`` and are fed to each variable's
    initializer, with names and shapes checked first so nothing is restored silently wrong.

    Args:
        init_missing: Variables the checkpoint lacks (a ``Saver(var_list=...)`` subset) run
            their own initializer instead of failing; they are returned and logged.

    Returns:
        The variables initialised rather than restored (empty unless ``init_missing``).

    Raises:
        CheckpointError: Missing variables (naming them and ``--init-missing``), shape
            mismatches, or unreadable ``.data`` files.
    """
    reader = open_reader(prefix)
    shapes = reader.get_variable_to_shape_map()
    missing = [v.op.name for v in variables if v.op.name not in shapes]
    _check_match(prefix, variables, shapes, missing, init_missing)
    present = [v for v in variables if v.op.name in shapes]
    if missing:
        _refuse_foreign_graph(prefix, variables, shapes, missing, present)
    try:
        feeds = {v.initializer.inputs[1]: reader.get_tensor(v.op.name) for v in present}
    except Exception as exc:
        raise CheckpointError(
            f"cannot read the values of checkpoint '{prefix}': {_first_line(exc)}",
            hint="a .data-* shard is missing, cut off or corrupt: copy it again",
        ) from exc
    if present:
        session.run([v.initializer for v in present], feeds)
    if missing:
        _initialise_missing(session, variables, prefix, missing)
    return missing


def _check_match(
    prefix: str,
    variables: Sequence[Any],
    shapes: dict[str, Any],
    missing: list[str],
    init_missing: bool,
) -> None:
    """Raise unless every variable has a value of its shape (``missing`` ones allowed with
    ``init_missing``)."""
    wrong = [
        f"{v.op.name}: graph {v.shape.as_list()} vs checkpoint {list(shapes[v.op.name])}"
        for v in variables
        if v.op.name in shapes
        and v.shape.is_fully_defined()
        and v.shape.as_list() != list(shapes[v.op.name])
    ]
    if not wrong and (not missing or init_missing):
        return
    shown = ", ".join(missing[:10]) + (
        f" and {len(missing) - 10} more" if len(missing) > 10 else ""
    )
    detail = "; ".join(
        filter(
            None,
            [
                f"{len(missing)} graph variable(s) missing from the checkpoint: {shown}"
                if missing
                else "",
                f"shape mismatches: {wrong[:10]}" if wrong else "",
            ],
        )
    )
    raise CheckpointError(
        f"checkpoint '{prefix}' does not match its graph: {detail}",
        hint="use the .meta written together with this checkpoint"
        if wrong
        else "a Saver(var_list=...) checkpoint holds a subset: pass --init-missing to give "
        "the others their initial values (config: model.init_missing: true)",
    )


def _initialise_missing(
    session: Any, variables: Sequence[Any], prefix: str, missing: list[str]
) -> None:
    """Run the initializers of the variables the checkpoint lacks (``--init-missing``)."""
    log.warning(
        "checkpoint %s lacks %d variable(s), initialised instead (--init-missing): %s",
        prefix,
        len(missing),
        ", ".join(missing),
    )
    by_name = {v.op.name: v for v in variables}
    try:
        session.run([by_name[m].initializer for m in missing])
    except Exception as exc:
        raise CheckpointError(
            f"cannot initialise the variables checkpoint '{prefix}' lacks: {_first_line(exc)}",
            hint="their initializers need inputs or other variables; save a full checkpoint",
        ) from exc
