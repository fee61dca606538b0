"""Read a Keras 3 ``config.json`` as data and decide whether it can be rebuilt without running code.

Keras' own ``load_model`` imports any module a config names and, without ``safe_mode``,
runs marshalled Python (``Lambda`` layers). Here the JSON is parsed and walked as plain
data first: every serialized object must come from Keras itself (``module`` ``keras`` or
``keras.*``, no registered custom name), and the classes that carry code or reach files
(``Lambda``, ``TFSMLayer``, wrappers of Torch, JAX or Flax modules) are refused by name.
Only a config that passes is handed to Keras' deserializer, with ``safe_mode=True``.
No TensorFlow or Keras import happens in this module.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from detector.errors import ModelError

#: Largest config.json read (real ones are kilobytes to a few megabytes).
MAX_CONFIG_BYTES = 64 * 2**20
#: Classes refused by name: they run code from the file, load other files, or wrap
#: another framework's pickled module.
CODE_CLASSES = frozenset(
    {"Lambda", "__lambda__", "TFSMLayer", "TorchModuleWrapper", "JaxLayer", "FlaxLayer"}
)
#: Serialization markers Keras writes for plain values (not classes to import).
_VALUE_MARKERS = frozenset({"__tuple__", "__tensor__", "__numpy__", "__bytes__", "__typespec__"})


@dataclass
class KerasConfig:
    """A parsed Keras model config and what it says.

    Attributes:
        config: The JSON object (``module``, ``class_name``, ``config``, ...).
        refused: Why it cannot be rebuilt safely (empty when it can): each entry names
            the class and where it sits (``layers[2] 'scale' Lambda: runs Python code``).
        layers: One entry per layer: name, class, a few of its settings, its inputs.
    """

    config: dict[str, Any]
    refused: list[str] = field(default_factory=list)
    layers: list[dict[str, Any]] = field(default_factory=list)

    @property
    def model_class(self) -> str:
        return str(self.config.get("class_name", "?"))


def parse_config(data: bytes, what: str) -> dict[str, Any]:
    """The JSON object of a ``config.json``, or a clear refusal.

    Raises:
        ModelError: Too large, not JSON, nested too deeply, or not a Keras object.
    """
    if len(data) > MAX_CONFIG_BYTES:
        raise ModelError(
            f"{what}: config.json is {len(data)} bytes, over the {MAX_CONFIG_BYTES} accepted",
            hint="a Keras model's config is kilobytes; this file is damaged or not a model",
        )
    try:
        config = json.loads(data.decode("utf-8"))
    except RecursionError as exc:
        raise ModelError(
            f"{what}: config.json nests too deeply to read", hint="the file is damaged"
        ) from exc
    except (UnicodeDecodeError, ValueError) as exc:
        raise ModelError(
            f"{what}: config.json is not JSON: {exc}", hint="the archive is damaged: save it again"
        ) from exc
    if not isinstance(config, dict) or "class_name" not in config:
        raise ModelError(
            f"{what}: config.json holds no Keras object (no class_name)",
            hint="is it a Keras 3 .keras archive?",
        )
    return config


def _problem(obj: dict[str, Any]) -> str | None:
    """Why one serialized object is refused, or None."""
    cls = str(obj.get("class_name", ""))
    module = obj.get("module")
    registered = obj.get("registered_name")
    if cls in CODE_CLASSES:
        return f"{cls}: runs Python code or loads other files"
    if cls in _VALUE_MARKERS:
        return None
    if isinstance(registered, str) and ">" in registered:
        return f"{cls}: a custom class registered as {registered!r} (its code is not Keras')"
    if module is None:
        return None if "config" not in obj or cls == "function" else f"{cls}: names no module"
    if not isinstance(module, str) or not (module == "keras" or module.startswith("keras.")):
        return f"{cls}: from module {module!r}, not from Keras (custom code)"
    return None


def _layer_entry(obj: dict[str, Any], index: int) -> dict[str, Any]:
    conf = obj.get("config") if isinstance(obj.get("config"), dict) else {}
    assert isinstance(conf, dict)
    keep = ("units", "filters", "kernel_size", "strides", "activation", "rate", "axis")
    entry: dict[str, Any] = {"index": index, "name": conf.get("name"), "class": obj["class_name"]}
    entry.update({k: conf[k] for k in keep if k in conf and not isinstance(conf[k], dict)})
    if isinstance(conf.get("activation"), dict):
        entry["activation"] = conf["activation"].get("config", "?")
    if "batch_shape" in conf:
        entry["shape"] = conf["batch_shape"]
    if "inbound_nodes" in obj:
        entry["inbound"] = _inbound_names(obj["inbound_nodes"])
    return entry


def _inbound_names(nodes: Any) -> list[str]:
    """Layer names a functional layer reads (``keras_history`` entries), in order."""
    found: list[str] = []
    stack: list[Any] = [nodes]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            if isinstance(item.get("keras_history"), list) and item["keras_history"]:
                found.append(str(item["keras_history"][0]))
            else:
                stack.extend(reversed(list(item.values())))
        elif isinstance(item, list):
            stack.extend(reversed(item))
    return found


def review_config(config: dict[str, Any]) -> KerasConfig:
    """Walk a parsed config (iteratively) for refused objects and list its layers."""
    result = KerasConfig(config)
    stack: list[tuple[Any, str]] = [(config, "model")]
    while stack:
        item, where = stack.pop()
        if isinstance(item, dict):
            if "class_name" in item:
                why = _problem(item)
                if why is not None:
                    name = (
                        item.get("config", {}).get("name")
                        if isinstance(item.get("config"), dict)
                        else None
                    )
                    result.refused.append(f"{where}{f' {name!r}' if name else ''} {why}")
            stack.extend((v, f"{where}.{k}") for k, v in item.items() if isinstance(v, dict | list))
        elif isinstance(item, list):
            stack.extend(
                (v, f"{where}[{i}]") for i, v in enumerate(item) if isinstance(v, dict | list)
            )
    inner = config.get("config", {})
    layers = inner.get("layers", []) if isinstance(inner, dict) else []
    result.layers = [
        _layer_entry(obj, i)
        for i, obj in enumerate(layers)
        if isinstance(obj, dict) and "class_name" in obj
    ]
    result.refused.sort()
    return result


def refusal(review: KerasConfig, what: str) -> ModelError:
    """The error for a config that cannot be rebuilt safely, naming every refused object."""
    shown = "; ".join(review.refused[:6]) + (
        f"; and {len(review.refused) - 6} more" if len(review.refused) > 6 else ""
    )
    return ModelError(
        f"{what} cannot be rebuilt without running code from the file: {shown}",
        hint="'model inspect' and 'model export-weights' still read it (nothing is run); to "
        "convert it, rebuild the model in your own code and pass it: --model my_model.py:build "
        "(your function returning the Keras model; the file's weights are loaded into it)",
    )
