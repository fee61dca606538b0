"""Tiny detectors with the TF Object Detection API names, built in the test in milliseconds.

Each one sees the image: per image, ``score = sum(mean RGB / 255 · w)`` with ``w`` a weight
vector (a constant in the frozen graph, a variable in the SavedModel and the checkpoint),
so a test can tell that weights were restored and that channels arrive in RGB order.

Outputs for a batch ``B``: ``detection_boxes`` ``[B, 2, 4]`` (box 0 at normalized
``[0.1, 0.2, 0.5, 0.6]``, box 1 the whole image), ``detection_scores`` ``[B, 2]`` (``score``
and ``score / 2``), ``detection_classes`` ``[B, 2]`` (1 and 2), ``num_detections`` ``[B]`` (2).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

BOX0 = (0.1, 0.2, 0.5, 0.6)  # ymin, xmin, ymax, xmax
RED = np.array([1.0, 0.0, 0.0], np.float32)  # w: the score is the mean red level / 255


def _heads(tf, image, w, prefix: str = ""):
    """Build the four outputs from a uint8 image tensor and a weight tensor ``[3]``."""
    x = tf.cast(image, tf.float32) / 255.0
    mean = tf.reduce_mean(x, axis=[1, 2])  # [B, 3] RGB
    score = tf.reduce_sum(mean * w, axis=1)  # [B]
    batch = tf.shape(image)[0]
    boxes = tf.tile(tf.constant([[list(BOX0), [0.0, 0.0, 1.0, 1.0]]]), tf.stack([batch, 1, 1]))
    scores = tf.stack([score, score / 2.0], axis=1)
    classes = tf.tile(tf.constant([[1.0, 2.0]]), tf.stack([batch, 1]))
    num = tf.cast(tf.fill(tf.stack([batch]), 2), tf.float32)
    return {
        f"{prefix}detection_boxes": boxes,
        f"{prefix}detection_scores": scores,
        f"{prefix}detection_classes": classes,
        f"{prefix}num_detections": num,
    }


def build_frozen(
    path: Path,
    w: np.ndarray = RED,
    input_name: str = "image_tensor",
    fail_above: float | None = None,
) -> Path:
    """A frozen GraphDef (``.pb``) with ``w`` as a constant.

    With ``fail_above``, running it on an image whose score exceeds that value fails (an
    ``Assert`` op): a model that breaks mid-run.
    """
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.uint8, [None, None, None, 3], name=input_name)
        heads = _heads(tf, image, tf.constant(w, tf.float32))
        if fail_above is not None:
            check = tf.debugging.assert_less_equal(
                heads["detection_scores"][:, 0], fail_above, message="score above the limit"
            )
            with tf.control_dependencies([check]):
                heads["detection_scores"] = tf.identity(heads["detection_scores"])
        for name, t in heads.items():
            tf.identity(t, name=name)
    path = Path(path)
    path.write_bytes(graph.as_graph_def().SerializeToString(deterministic=True))
    return path


#: The label map of the tiny detectors: class 1 is box 0 (scored by the red level), 2 the
#: whole image.
LABELS = 'item { id: 1 name: "red" display_name: "red" }\nitem { id: 2 name: "whole" }\n'


def tiny_model_files(folder: Path, name: str = "frozen_inference_graph.pb") -> dict[str, Path]:
    """A tiny frozen detector (``model``) and its label map (``labels``) in ``folder``."""
    labels = folder / "labels.pbtxt"
    labels.write_text(LABELS)
    return {"model": build_frozen(folder / name), "labels": labels}


def build_unsafe_frozen(path: Path) -> Path:
    """A frozen graph that reads a file (``ReadFile``): the allowlist must refuse it."""
    import tensorflow as tf

    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
        data = tf.io.read_file("/etc/hostname")
        w = tf.cast(tf.strings.length(data), tf.float32) * tf.constant(RED)
        for name, t in _heads(tf, image, w).items():
            tf.identity(t, name=name)
    path = Path(path)
    path.write_bytes(graph.as_graph_def().SerializeToString(deterministic=True))
    return path


def build_saved_model(folder: Path, w: np.ndarray = RED) -> Path:
    """A TF2 SavedModel (``serving_default``, input key ``input_tensor``) with ``w`` a variable."""
    import tensorflow as tf

    class Detector(tf.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = tf.Variable(np.asarray(w, np.float32))

        @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8)])
        def __call__(self, input_tensor):
            return _heads(tf, input_tensor, self.w)

    module = Detector()
    tf.saved_model.save(module, str(folder), signatures={"serving_default": module.__call__})
    return Path(folder)


def build_checkpoint(
    folder: Path, steps: dict[int, np.ndarray] | None = None, keep_state_file: bool = True
) -> Path:
    """A ``tf.compat.v1.train.Saver`` checkpoint folder: ``model.ckpt-N.*`` for each step.

    The variable starts at zeros in the graph, so only a real restore gives a score.
    Only the first save writes a ``.meta`` (one graph file, several steps).
    """
    import tensorflow as tf

    tf1 = tf.compat.v1
    steps = steps or {100: RED}
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    graph = tf.Graph()
    with graph.as_default():
        image = tf1.placeholder(tf.uint8, [None, None, None, 3], name="image_tensor")
        w = tf1.get_variable(
            "head/w", shape=[3], dtype=tf.float32, initializer=tf1.zeros_initializer()
        )
        for name, t in _heads(tf, image, w).items():
            tf.identity(t, name=name)
        saver = tf1.train.Saver(max_to_keep=10)
        with tf1.Session(graph=graph) as sess:
            sess.run(tf1.global_variables_initializer())
            for i, (step, value) in enumerate(sorted(steps.items())):
                w.load(np.asarray(value, np.float32), sess)
                saver.save(
                    sess, str(folder / "model.ckpt"), global_step=step, write_meta_graph=(i == 0)
                )
    if not keep_state_file:
        (folder / "checkpoint").unlink()
    return folder


def tiny_video(
    path: Path,
    frames: int = 12,
    fps: float = 7.0,
    size: tuple[int, int] = (64, 48),
    fourcc: str = "MJPG",
) -> Path:
    """A video whose frame i is a flat colour with red level ``20 * i`` (capped at 255)."""
    from helpers.media import write_video

    w, h = size

    def frame(i: int) -> np.ndarray:
        img = np.zeros((h, w, 3), np.uint8)
        img[:, :, 2] = min(255, 20 * i + 40)  # BGR: channel 2 is red
        img[:, :, 1] = 30
        return img

    return write_video(path, (frame(i) for i in range(frames)), fps, fourcc, size)


def read_video(path: Path) -> tuple[tuple[int, float, int, int], list[np.ndarray]]:
    """Decode a whole video: ``((frame count, fps, width, height), frames)`` from its header."""
    import cv2

    cap = cv2.VideoCapture(str(path))
    assert cap.isOpened(), f"cannot play {path}"
    props = (
        int(cap.get(cv2.CAP_PROP_FRAME_COUNT)),
        cap.get(cv2.CAP_PROP_FPS),
        int(cap.get(cv2.CAP_PROP_FRAME_WIDTH)),
        int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT)),
    )
    frames = []
    while True:
        ok, img = cap.read()
        if not ok:
            break
        frames.append(img)
    cap.release()
    return props, frames
