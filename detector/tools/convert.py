"""Convert among checkpoint, frozen ``.pb`` and SavedModel, each verified on a probe input.

Every conversion passes through a frozen GraphDef: the source is loaded (checked against
the op allowlist), frozen with its variable names remembered, and written as the target —
a ``.pb`` (+ sidecar JSON), a checkpoint (the weights become variables again) or a
SavedModel (variables, a ``serve`` tag and a ``serving_default`` signature whose keys are
the graph's input and output names). The written target is then loaded back like any
other input and must give the source's outputs on the same probe. A ``.tflite`` source is
handed to the TFLite-SSD converter (:mod:`detector.tflite.convert`).
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from google.protobuf import text_format

from detector.errors import ConfigError, ModelError
from detector.model.checkpoints import STATE_FILE, _state_message_class, resolve_checkpoint
from detector.model.graphfile import load_graph, tensor_name, tf_module
from detector.tflite.convert import ConvertOptions, convert_tflite_ssd
from detector.tools.attribution import find_weight_constants
from detector.tools.freeze import freeze_loaded, sidecar_path, write_frozen
from detector.tools.objconvert import saved_model_from_checkpoint
from detector.tools.unfreeze import graph_with_variables, write_checkpoint
from detector.tools.verify import compare_outputs, probe_feed

log = logging.getLogger(__name__)

Target = Literal["pb", "checkpoint", "saved_model"]
TARGETS: tuple[str, ...] = ("pb", "checkpoint", "saved_model")


def guess_target(out: Path) -> Target:
    """The target a path asks for: ``.pb`` → frozen graph; anything else needs ``--to``."""
    if out.suffix == ".pb":
        return "pb"
    raise ConfigError(
        f"cannot tell what to write from '{out}'",
        hint="pass --to pb|checkpoint|saved_model (a .pb suffix means pb)",
    )


def write_saved_model(
    graph_def: Any,
    mapping: dict[str, str],
    inputs: Sequence[str],
    outputs: Sequence[str],
    out: Path,
) -> None:
    """Write a TF1-style SavedModel (``serve``, ``serving_default``) with variables."""

    tf1 = tf_module().compat.v1
    if out.exists() and any(out.iterdir()):
        raise ModelError(
            f"SavedModel folder '{out}' exists and is not empty",
            hint="pass a new folder (nothing is overwritten)",
        )
    if out.exists():
        out.rmdir()  # the builder insists on creating the folder itself
    graph, variables, values = graph_with_variables(graph_def, mapping)
    with graph.as_default(), tf1.Session(graph=graph) as sess:
        if variables:
            sess.run(
                [v.initializer for v in variables.values()],
                {v.initializer.inputs[1]: values[k] for k, v in variables.items()},
            )
        signature = tf1.saved_model.signature_def_utils.predict_signature_def(
            inputs={k: graph.get_tensor_by_name(tensor_name(k)) for k in inputs},
            outputs={k: graph.get_tensor_by_name(tensor_name(k)) for k in outputs},
        )
        builder = tf1.saved_model.Builder(str(out))
        builder.add_meta_graph_and_variables(
            sess,
            [tf1.saved_model.tag_constants.SERVING],
            signature_def_map={"serving_default": signature},
            strip_default_attrs=True,
        )
        builder.save()


def convert(
    src: str | Path,
    out: str | Path,
    *,
    to: Target | None = None,
    outputs: Sequence[str] | None = None,
    signature: str = "serving_default",
    exclude: Sequence[str] = (),
    step: int = 0,
    verify: bool = True,
    allow_unsafe_ops: bool = False,
    init_missing: bool = False,
    model: str | None = None,
) -> dict[str, Any]:
    """Convert a checkpoint, frozen graph or SavedModel into another of these formats.

    The result is written under a temporary name beside ``out`` and moved into place only
    once it has been loaded back and verified: a failed conversion leaves nothing behind.

    Args:
        src: The model to read (format found from its contents).
        out: The ``.pb`` file, checkpoint folder or SavedModel folder to write.
        to: ``pb``, ``checkpoint`` or ``saved_model``; default from ``out`` (``.pb``).
        outputs: Output node names (frozen graphs and checkpoints); default: the TF OD
            API names when present, else the graph's sinks.
        signature: The SavedModel signature to read.
        exclude: Variables to keep as variables when writing a ``.pb``.
        step: The global step of a written checkpoint.
        verify: Load the result back and compare outputs with the source on a probe.
        allow_unsafe_ops: Accept ops outside the allowlist (trusted files only).
        init_missing: (Checkpoint source) variables the checkpoint lacks take their
            initial values instead of failing; listed in the report's ``initialised``.
        model: (Object-based checkpoint source) ``FILE.py:FUNCTION`` or
            ``module:FUNCTION``, the user's code that builds the ``tf.Module`` or Keras
            model that wrote it (see :mod:`detector.tools.objconvert`).

    Returns:
        A report: formats, paths, inputs, outputs, variables, the largest probe difference.

    Raises:
        ModelError, CheckpointError, UnsafeGraphError, ConfigError: What went wrong.
    """
    src, out = Path(src), Path(out)
    if model is not None:
        return _convert_object_checkpoint(
            src,
            out,
            model,
            to=to,
            signature=signature,
            exclude=exclude,
            step=step,
            verify=verify,
            allow_unsafe_ops=allow_unsafe_ops,
        )
    job = _Job(src, out, _target(to, out), tuple(exclude), step, verify, allow_unsafe_ops)
    report = _run(job, outputs=outputs, signature=signature, init_missing=init_missing)
    log.info("converted %s (%s) → %s (%s)", src, report["source_format"], out, job.target)
    return report


@dataclass(frozen=True)
class _Job:
    """What one conversion reads, writes and checks (the steps of :func:`convert` share it)."""

    src: Path
    out: Path
    target: Target
    exclude: tuple[str, ...]
    step: int
    verify: bool
    allow_unsafe_ops: bool


def _target(to: Target | None, out: Path) -> Target:
    """The format to write: ``to``, or the one ``out``'s suffix asks for."""
    target = to or guess_target(out)
    if target not in TARGETS:
        raise ConfigError(f"unknown target format {target!r}", hint=f"use one of {TARGETS}")
    return target


def _run(
    job: _Job, *, outputs: Sequence[str] | None, signature: str, init_missing: bool
) -> dict[str, Any]:
    """Load the source, convert it into a staging path and move it into place; the report."""
    if job.target == "pb" and job.exclude and job.verify:
        log.info("variables kept by --exclude are fed their values during verification")
    with (
        load_graph(
            job.src,
            outputs=outputs,
            signature=signature,
            allow_unsafe_ops=job.allow_unsafe_ops,
            init_missing=init_missing,
        ) as source,
        staging(job.out, job.target, job.step) as tmp,
    ):
        return _convert_loaded(job, source, tmp)


def _convert_loaded(job: _Job, source: Any, tmp: Path) -> dict[str, Any]:
    """Freeze the loaded ``source``, write it as the target at ``tmp``, verify; the report."""
    frozen = freeze_loaded(
        source, exclude=job.exclude if job.target == "pb" else (), verify=False, what=str(job.src)
    )
    mapping = dict(frozen.variables)
    if not mapping:  # a frozen source: find the weights again to make variables
        side = sidecar_path(job.src) if job.src.is_file() else None
        mapping = find_weight_constants(frozen.graph_def, side)
    written = _write_target(job, source, frozen, mapping, tmp)
    return {
        "source": str(job.src),
        "source_format": source.fmt,
        "target": job.target,
        **written,
        "inputs": frozen.inputs,
        "outputs": frozen.outputs,
        "variables": len(mapping),
        "kept_variables": frozen.kept,
        "initialised": list(source.initialised),
        "max_diff": _verify_written(job, source, frozen, tmp),
    }


def _write_target(
    job: _Job, source: Any, frozen: Any, mapping: dict[str, str], tmp: Path
) -> dict[str, str]:
    """Write the frozen graph at ``tmp`` as ``job.target``; the report's paths (final names)."""
    out = job.out
    if job.target == "pb":  # the sidecar names every weight, also of a frozen source
        write_frozen(replace(frozen, variables=mapping), tmp, source=str(job.src), step=source.step)
        return {"out": str(out), "sidecar": str(sidecar_path(out))}
    if job.target == "checkpoint":
        prefix, _ = write_checkpoint(frozen.graph_def, mapping, frozen.outputs, tmp, step=job.step)
        return {"out": str(out), "prefix": str(out / Path(prefix).name)}
    write_saved_model(frozen.graph_def, mapping, frozen.inputs, frozen.outputs, tmp)
    return {"out": str(out)}


def _verify_written(job: _Job, source: Any, frozen: Any, tmp: Path) -> float | None:
    """The largest output difference of the written model against the source on a probe
    (``None`` when not verified, or verified while freezing because variables were kept)."""
    if not job.verify:
        return None
    if job.target == "pb" and frozen.kept:
        log.info("kept variables: the frozen graph is verified while freezing instead")
        freeze_loaded(source, exclude=job.exclude, verify=True, what=str(job.src))
        return None
    return _verify(source, tmp, job.target, frozen.outputs, job.allow_unsafe_ops, job.out)


def _verify(
    source: Any,
    out: Path,
    target: str,
    outputs: Sequence[str],
    allow_unsafe_ops: bool,
    shown: Path,
) -> float:
    """Load the written model back and compare it with the source on one probe."""
    with load_graph(
        out, outputs=None if target == "saved_model" else outputs, allow_unsafe_ops=allow_unsafe_ops
    ) as result:
        feed = probe_feed(result)
        missing = [k for k in feed if k not in source.inputs]
        if missing:
            raise ModelError(f"converted model '{shown}' has inputs {missing} the source lacks")
        got = result.run(feed)
        expected = source.run(feed)
        return compare_outputs(expected, got, f"'{shown}' (not written) vs its source")


def _convert_object_checkpoint(src: Path, out: Path, model: str, **options: Any) -> dict[str, Any]:
    """Build the model ``model`` names, restore ``src`` into it, convert the SavedModel."""

    ref = resolve_checkpoint(src)
    with tempfile.TemporaryDirectory(prefix=".detector-objckpt-", dir=out.parent) as tmp:
        folder = saved_model_from_checkpoint(model, ref.prefix, Path(tmp) / "saved")
        report = convert(folder, out, **options)
    report.update(source=str(src), source_format="object checkpoint", model=model)
    return report


@contextmanager
def staging(out: Path, target: str, step: int) -> Iterator[Path]:
    """A temporary path beside ``out`` to write to; moved onto ``out`` when the block
    succeeds, removed when it fails (nothing half-written or unverified is left)."""

    _refuse_overwrite(out, target, step)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.stem}.tmp{os.getpid()}{out.suffix}")
    try:
        yield tmp
    except BaseException:
        for path in (tmp, sidecar_path(tmp)):
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            elif path.exists():
                path.unlink()
        raise
    if target == "pb":
        os.replace(tmp, out)
        os.replace(sidecar_path(tmp), sidecar_path(out))
    elif target == "saved_model":
        if out.is_dir():
            out.rmdir()  # checked empty by _refuse_overwrite
        os.replace(tmp, out)
    else:
        _move_checkpoint(tmp, out)


def _refuse_overwrite(out: Path, target: str, step: int) -> None:
    if target == "saved_model" and out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise ModelError(
            f"SavedModel folder '{out}' exists and is not empty",
            hint="pass a new folder (nothing is overwritten)",
        )
    if target == "checkpoint" and Path(f"{out}/model.ckpt-{step}.index").exists():
        raise ModelError(
            f"'{out}' already holds checkpoint model.ckpt-{step}",
            hint="pass a new folder or another --step (nothing is overwritten)",
        )


def _move_checkpoint(tmp: Path, out: Path) -> None:
    """Move a verified checkpoint's files into ``out``, recording it in the state file."""

    out.mkdir(parents=True, exist_ok=True)
    new_state = _state_message_class()()
    text_format.Parse((tmp / STATE_FILE).read_text(encoding="utf-8"), new_state)
    for f in tmp.iterdir():
        if f.name != STATE_FILE:
            os.replace(f, out / f.name)
    state_path = out / STATE_FILE
    state = _state_message_class()()
    if state_path.is_file():
        text_format.Parse(state_path.read_text(encoding="utf-8"), state)
    name = new_state.model_checkpoint_path
    state.model_checkpoint_path = name
    if name not in state.all_model_checkpoint_paths:
        state.all_model_checkpoint_paths.append(name)
    part = state_path.with_name(STATE_FILE + ".tmp")
    part.write_text(text_format.MessageToString(state), encoding="utf-8")
    os.replace(part, state_path)
    shutil.rmtree(tmp, ignore_errors=True)


def convert_tflite(
    src: str | Path,
    out: str | Path,
    *,
    nms_iou: float | None = None,
    score_threshold: float | None = None,
    max_detections: int | None = None,
    weights: str | None = None,
    anchors: str | None = None,
) -> dict[str, Any]:
    """Convert a TFLite SSD into a frozen graph with the TF OD API names (options optional)."""

    given = {
        "nms_iou": nms_iou,
        "score_threshold": score_threshold,
        "max_detections": max_detections,
        "weights": weights,
        "anchors": anchors,
    }
    chosen = {k: v for k, v in given.items() if v is not None}
    options = replace(ConvertOptions(), **chosen)  # type: ignore[arg-type]
    return convert_tflite_ssd(src, out, options=options)
