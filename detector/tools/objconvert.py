"""Turn an object-based checkpoint into a SavedModel with the model code the user names.

An object-based checkpoint (``tf.train.Checkpoint``, Keras ``save_weights`` in TF format)
holds values by object path and no graph. Given ``--model FILE.py:FUNCTION`` (or
``package.module:FUNCTION``) — the user's own code that builds the ``tf.Module`` or Keras
model — the object is built, its values restored (every value of the checkpoint must find
its variable), and it is saved as a SavedModel (Keras: ``model.export``) that the rest of
the toolkit converts further. The named code runs with the user's rights: it is theirs,
unlike a model file, which is data.
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from detector.errors import ConfigError, ModelError
from detector.model.checkpoints import open_reader
from detector.model.graphfile import tf_module

log = logging.getLogger(__name__)


def load_factory(spec: str) -> Callable[[], Any]:
    """The function ``FILE.py:NAME`` or ``package.module:NAME`` names.

    Raises:
        ConfigError: The spec is malformed, or the file, module or function is not there.
    """
    where, _, name = spec.rpartition(":")
    if not where or not name.isidentifier():
        raise ConfigError(
            f"--model {spec!r} is not MODULE:FUNCTION",
            hint="e.g. --model my_model.py:build or --model mypkg.models:build",
        )
    try:
        if where.endswith(".py"):
            path = Path(where)
            if not path.is_file():
                raise ConfigError(f"--model file '{path}' does not exist")
            module_spec = importlib.util.spec_from_file_location(
                f"_detector_user_{path.stem}", path
            )
            if module_spec is None or module_spec.loader is None:
                raise ConfigError(f"--model file '{path}' cannot be imported")
            module = importlib.util.module_from_spec(module_spec)
            sys.modules[module_spec.name] = module
            module_spec.loader.exec_module(module)
        else:
            module = importlib.import_module(where)
    except ConfigError:
        raise
    except Exception as exc:
        raise ConfigError(
            f"cannot import --model {where!r}: {type(exc).__name__}: {exc}",
            hint="the module must import without arguments",
        ) from exc
    factory = getattr(module, name, None)
    if not callable(factory):
        raise ConfigError(f"--model {where!r} has no function {name!r}")
    return factory  # type: ignore[no-any-return]


def restore_object(obj: Any, prefix: str | Path) -> None:
    """Restore ``obj`` from an object checkpoint; its root is ``model`` (``tf.train.Checkpoint(
    model=obj)``) or the object itself (Keras 2 ``save_weights``).

    Raises:
        ModelError: Checkpoint values with no variable in ``obj`` (the wrong model code).
    """

    tf = tf_module()
    keys = open_reader(prefix).get_variable_to_shape_map()
    rooted = any(k.startswith("model/") for k in keys)
    ckpt = tf.train.Checkpoint(model=obj) if rooted else tf.train.Checkpoint(root=obj)
    status = ckpt.read(str(prefix))
    try:
        status.assert_existing_objects_matched()
        status.assert_nontrivial_match()
    except AssertionError as exc:
        raise ModelError(
            f"the model built by --model does not match checkpoint '{prefix}': "
            f"{str(exc).strip().splitlines()[0]}",
            hint="name the code that wrote this checkpoint; 'model inspect' lists its object paths",
        ) from exc


def saved_model_from_checkpoint(spec: str, prefix: str | Path, folder: Path) -> Path:
    """Build the object ``spec`` names, restore ``prefix`` into it, save it to ``folder``."""
    tf = tf_module()
    obj = load_factory(spec)()
    restore_object(obj, prefix)
    if hasattr(obj, "export") and callable(obj.export) and hasattr(obj, "layers"):
        obj.export(str(folder), verbose=False)
    else:
        try:
            tf.saved_model.save(obj, str(folder))
        except Exception as exc:
            raise ModelError(
                f"cannot save the object built by --model {spec!r}: {exc}",
                hint="give its __call__ a tf.function with an input_signature",
            ) from exc
    saved = tf.saved_model.load(str(folder))
    if not saved.signatures:
        raise ModelError(
            f"the object built by --model {spec!r} has no signature to convert",
            hint="decorate its __call__ with @tf.function(input_signature=[tf.TensorSpec(...)])",
        )
    log.info("built %s, restored %s, saved as %s", spec, prefix, folder)
    return folder
