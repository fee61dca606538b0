"""Convert a Keras 3 file to a frozen .pb, SavedModel or checkpoint, checked against Keras itself.

The model comes from the ``.keras`` archive when its config is Keras' own classes (rebuilt
in safe mode), or from the user's code (``--model FILE.py:FUNC``) with the file's weights
loaded into it — the only way for a ``.weights.h5`` or a config with custom or lambda
layers. Keras exports it (``model.export``, an inference SavedModel), the toolkit converts
that like any SavedModel, and the written result must give what Keras' own forward pass
gives on random inputs before it is moved into place.
"""

from __future__ import annotations

import logging
import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import numpy as np

from detector.errors import ConfigError, ModelError
from detector.model.graphfile import load_graph
from detector.model.keras_file import open_keras, rebuild
from detector.model.tf_errors import first_line
from detector.tools.convert import convert, staging
from detector.tools.freeze import sidecar_path
from detector.tools.keras_inspect import WEIGHTS_ONLY_HINT
from detector.tools.objconvert import load_factory
from detector.tools.verify import compare_outputs

log = logging.getLogger(__name__)


def build_user_model(spec: str, weights: Path) -> Any:
    """The model the user's ``spec`` builds, with the weights of ``weights`` loaded.

    Raises:
        ModelError: The weights do not fit the model the code builds.
    """

    model = load_factory(spec)()
    try:
        model.load_weights(str(weights))
    except Exception as exc:
        raise ModelError(
            f"the model built by --model {spec!r} does not take the weights of '{weights}': "
            f"{first_line(exc)}",
            hint="name the code that built the model these weights were saved from",
        ) from exc
    return model


def _model(src: Path, fmt: str, spec: str | None, stack: Any) -> Any:
    if fmt == "keras_weights":
        if spec is None:
            raise ConfigError(f"cannot convert '{src}' by itself", hint=WEIGHTS_ONLY_HINT)
        return build_user_model(spec, src)
    archive = stack.enter_context(open_keras(src))
    if spec is not None:
        return build_user_model(spec, archive.weights)
    return rebuild(archive)


def _feed(model: Any, seed: int = 0) -> list[np.ndarray]:
    """Random inputs for every model input: unknown batch 1, other unknown dims 32."""
    rng = np.random.default_rng(seed)
    feed = []
    for t in model.inputs:
        shape = [(1 if i == 0 else 32) if d is None else int(d) for i, d in enumerate(t.shape)]
        dtype = np.dtype(str(t.dtype))
        if dtype.kind == "f":
            feed.append(rng.standard_normal(shape).astype(dtype))
        else:
            feed.append(rng.integers(0, 4, shape).astype(dtype))
    return feed


def verify_against_keras(model: Any, out: Path, report: dict[str, Any]) -> float:
    """Run the written model and Keras' own forward pass on the same random inputs.

    Returns:
        The largest absolute difference over the outputs.

    Raises:
        ModelError: The outputs differ (or their number does).
    """

    feed = _feed(model)
    expected = model(feed if len(feed) > 1 else feed[0], training=False)
    many = expected if isinstance(expected, list | tuple) else [expected]
    expected_list = [np.asarray(e) for e in many]
    outputs = report["outputs"] if report["target"] == "pb" else None
    with load_graph(out, outputs=outputs) as loaded:
        keys = sorted(loaded.inputs)
        if len(keys) != len(feed):
            raise ModelError(f"'{out}' has inputs {keys}; the Keras model has {len(feed)}")
        got = loaded.run(dict(zip(keys, feed, strict=True)))
    names = sorted(got)
    if len(names) != len(expected_list):
        raise ModelError(f"'{out}' has outputs {names}; the Keras model has {len(expected_list)}")
    return compare_outputs(
        dict(zip(names, expected_list, strict=True)),
        got,
        f"'{out}' (not written) vs Keras' own forward pass",
        rtol=1e-4,
        atol=1e-5,
    )


def convert_keras(
    src: Path,
    fmt: str,
    out: Path,
    *,
    to: str,
    model: str | None = None,
    verify: bool = True,
    step: int = 0,
    exclude: tuple[str, ...] | list[str] = (),
) -> dict[str, Any]:
    """Convert a ``.keras`` or (with ``model``) a ``.weights.h5`` into ``to``; see the module.

    Raises:
        ModelError, ConfigError: What is missing or what differs.
    """

    with ExitStack() as stack:
        keras_model = _model(src, fmt, model, stack)
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="detector-keras-")))
        try:
            keras_model.export(str(tmp / "saved"), verbose=False)
        except Exception as exc:
            raise ModelError(
                f"Keras cannot export '{src}' as a SavedModel: {first_line(exc)}",
                hint="does the model have fixed input ranks? build it with keras.Input(...)",
            ) from exc
        with staging(out, to, step) as final:
            report = convert(
                tmp / "saved",
                final,
                to=to,  # type: ignore[arg-type]
                verify=verify,
                step=step,
                exclude=exclude,
            )
            if verify:
                report["keras_max_diff"] = verify_against_keras(keras_model, final, report)
    report.update(source=str(src), source_format=fmt, out=str(out))
    if "prefix" in report:
        report["prefix"] = str(out / Path(report["prefix"]).name)
    if to == "pb":
        report["sidecar"] = str(sidecar_path(out))
    if model is not None:
        report["model"] = model
    log.info("converted %s (%s) → %s (%s)", src, fmt, out, to)
    return report
