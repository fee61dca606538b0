"""load_model on tiny frozen graphs, SavedModels and checkpoints built in the test."""

from __future__ import annotations

import numpy as np
import pytest
from helpers.tiny_models import (
    BOX0,
    build_checkpoint,
    build_frozen,
    build_saved_model,
    build_unsafe_frozen,
)

from detector.errors import CheckpointError, DetectorError, ModelError, UnsafeGraphError

pytestmark = pytest.mark.tf


def red_batch(level: int, size: tuple[int, int] = (8, 10)) -> np.ndarray:
    """One RGB image whose red channel is ``level`` everywhere."""
    img = np.zeros((1, *size, 3), np.uint8)
    img[..., 0] = level
    return img


def check_detections(model, level: int, scale: float = 1.0) -> None:
    boxes, scores, classes, num = model.predict(red_batch(level))
    assert boxes.shape == (1, 2, 4) and scores.shape == (1, 2) and num.shape == (1,)
    np.testing.assert_allclose(boxes[0, 0], BOX0, atol=1e-6)
    np.testing.assert_allclose(scores[0], [scale * level / 255, scale * level / 510], rtol=1e-5)
    np.testing.assert_array_equal(classes[0], [1.0, 2.0])
    assert num[0] == 2


def test_frozen_pb_loads_and_runs(tmp_path):
    from detector.model.loader import load_model

    pb = build_frozen(tmp_path / "frozen_inference_graph.pb")
    with load_model(pb, device="cpu") as model:
        assert model.format == "frozen_pb"
        assert model.device == "cpu"
        assert model.input_size is None
        check_detections(model, 200)
        assert model.warm_up(width=32, height=24, runs=2) >= 0.0
        # A batch of two gives one row per image.
        boxes, scores, _, num = model.predict(np.concatenate([red_batch(51), red_batch(102)]))
        np.testing.assert_allclose(scores[:, 0], [0.2, 0.4], rtol=1e-5)
        assert boxes.shape == (2, 2, 4) and list(num) == [2, 2]


def test_device_auto_uses_cpu_without_gpu(tmp_path):
    from detector.model.loader import load_model
    from detector.model.session import visible_gpus

    with load_model(build_frozen(tmp_path / "g.pb")) as model:
        assert model.device == ("gpu" if visible_gpus() else "cpu")


def test_device_gpu_without_gpu_is_a_clear_error(tmp_path):
    from detector.model.loader import load_model
    from detector.model.session import visible_gpus

    if visible_gpus():
        pytest.skip("this machine has a GPU")
    with pytest.raises(ModelError, match="sees no GPU"):
        load_model(build_frozen(tmp_path / "g.pb"), device="gpu")


def test_saved_model_folder_loads_with_its_variables(tmp_path):
    from detector.model.loader import load_model

    folder = build_saved_model(tmp_path / "saved", w=np.array([0.5, 0.0, 0.0], np.float32))
    with load_model(folder, device="cpu") as model:
        assert model.format == "saved_model"
        check_detections(model, 200, scale=0.5)


def test_saved_model_missing_signature_lists_signatures(tmp_path):
    from detector.model.loader import load_model

    folder = build_saved_model(tmp_path / "saved")
    with pytest.raises(ModelError, match="serving_default") as info:
        load_model(folder, signature="predict")
    assert "model.signature" in str(info.value)


def test_saved_model_missing_output_names_keys_and_config_key(tmp_path):
    from detector.model.loader import TensorNames, load_model

    folder = build_saved_model(tmp_path / "saved")
    with pytest.raises(ModelError) as info:
        load_model(folder, tensors=TensorNames(boxes="boxes:0"))
    text = str(info.value)
    assert "'boxes:0'" in text and "detection_boxes" in text and "model.boxes_tensor" in text


def test_checkpoint_folder_restores_weights_not_initial_values(tmp_path):
    from detector.model.loader import load_model

    folder = build_checkpoint(tmp_path / "ckpt", {100: np.array([1.0, 0.0, 0.0], np.float32)})
    with load_model(folder, device="cpu") as model:
        assert model.format == "checkpoint"
        check_detections(model, 200)  # the graph's own initial value is zeros


def test_checkpoint_follows_state_file_and_highest_step_without_it(tmp_path):
    from detector.model.loader import load_model

    steps = {5: np.array([0.25, 0, 0], np.float32), 10: np.array([1.0, 0, 0], np.float32)}
    with load_model(build_checkpoint(tmp_path / "a", steps), device="cpu") as model:
        check_detections(model, 200)
    no_state = build_checkpoint(tmp_path / "b", steps, keep_state_file=False)
    assert not (no_state / "checkpoint").exists()
    with load_model(no_state, device="cpu") as model:
        check_detections(model, 200)  # step 10, the highest


def test_checkpoint_does_not_run_the_meta_restore_op(tmp_path):
    """A .meta whose restore op would fail if run still loads: the op is never run."""
    import tensorflow as tf

    from detector.model.loader import load_model

    folder = build_checkpoint(tmp_path / "ckpt")
    meta_path = next(folder.glob("*.meta"))
    meta = tf.compat.v1.MetaGraphDef()
    meta.ParseFromString(meta_path.read_bytes())
    (names,) = [n for n in meta.graph_def.node if n.name == "save/RestoreV2/tensor_names"]
    names.attr["value"].tensor.string_val[:] = [b"no/such/variable"]
    meta_path.write_bytes(meta.SerializeToString())
    with load_model(folder, device="cpu") as model:
        check_detections(model, 100)


def test_checkpoint_with_variable_missing_from_it_is_refused(tmp_path):
    import tensorflow as tf

    from detector.model.loader import load_model

    folder = build_checkpoint(tmp_path / "ckpt")
    # Rewrite the data under another variable name: the graph's 'head/w' is then missing.
    prefix = str(folder / "model.ckpt-100")
    graph = tf.Graph()
    with graph.as_default():
        other = tf.compat.v1.get_variable("other", shape=[3])
        saver = tf.compat.v1.train.Saver([other])
        with tf.compat.v1.Session(graph=graph) as sess:
            sess.run(other.initializer)
            saver.save(sess, prefix, write_meta_graph=False, write_state=False)
    with pytest.raises(CheckpointError, match="head/w"):
        load_model(folder, device="cpu")


def test_missing_tensor_lists_placeholders_outputs_and_config_key(tmp_path):
    from detector.model.loader import TensorNames, load_model

    pb = build_frozen(tmp_path / "g.pb", input_name="images")
    with pytest.raises(ModelError) as info:
        load_model(pb, tensors=TensorNames())
    text = str(info.value)
    assert "'image_tensor:0'" in text
    assert "images:0 uint8 [?,?,?,3]" in text  # the placeholder it does have
    assert "detection_boxes:0" in text  # among the candidate outputs
    assert "model.input_tensor" in text
    # With the right name it loads.
    with load_model(pb, tensors=TensorNames(input="images")) as model:
        check_detections(model, 60)


def test_missing_path_says_what_was_expected(tmp_path):
    from detector.model.loader import load_model

    with pytest.raises(ModelError) as info:
        load_model(tmp_path / "nope.pb")
    text = str(info.value)
    assert "nope.pb" in text and "does not exist" in text and "frozen graph" in text


def test_garbage_file_is_a_clear_error(tmp_path):
    from detector.model.loader import load_model

    bad = tmp_path / "model.pb"
    bad.write_bytes(b"\x00\xffthis is not a graph" * 10)
    with pytest.raises(DetectorError) as info:
        load_model(bad)
    assert "model.pb" in str(info.value)


def test_folder_without_a_model_is_a_clear_error(tmp_path):
    from detector.model.loader import load_model

    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DetectorError) as info:
        load_model(tmp_path)
    assert str(tmp_path) in str(info.value)


def test_unsafe_graph_is_refused_unless_allowed(tmp_path):
    from detector.model.loader import load_model

    pb = build_unsafe_frozen(tmp_path / "evil.pb")
    with pytest.raises(UnsafeGraphError, match="ReadFile"):
        load_model(pb)
    with load_model(pb, allow_unsafe_ops=True, device="cpu") as model:
        assert model.predict(red_batch(10))[0].shape == (1, 2, 4)


def test_wrong_outputs_are_caught_at_warm_up(tmp_path):
    from detector.model.loader import TensorNames, load_model

    pb = build_frozen(tmp_path / "g.pb")
    names = TensorNames(boxes="detection_scores:0")  # [B, K] where boxes must be [B, K, 4]
    with (
        load_model(pb, tensors=names, device="cpu") as model,
        pytest.raises(ModelError, match="not TF OD API detections"),
    ):
        model.warm_up()


def test_closed_model_refuses_predict(tmp_path):
    from detector.model.loader import load_model

    model = load_model(build_frozen(tmp_path / "g.pb"), device="cpu")
    model.close()
    model.close()  # idempotent
    with pytest.raises(ModelError, match="closed"):
        model.predict(red_batch(1))


@pytest.mark.parametrize("given", ["folder", "prefix", "meta", "index"])
def test_checkpoint_by_folder_prefix_meta_or_index(tmp_path, given):
    from detector.model.loader import load_model

    folder = build_checkpoint(tmp_path / "ckpt", {7: np.array([1.0, 0, 0], np.float32)})
    path = {
        "folder": folder,
        "prefix": folder / "model.ckpt-7",
        "meta": folder / "model.ckpt-7.meta",
        "index": folder / "model.ckpt-7.index",
    }[given]
    with load_model(path, device="cpu") as model:
        assert model.format == "checkpoint"
        check_detections(model, 150)
