"""TFLite SSD → frozen graph converter: reader, anchors, decoding, a tiny SSD, and the real
model.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from flatbuffers import flexbuffers
from helpers.tiny_tflite import (
    ANCHOR_TENSOR,
    BOX_TENSOR,
    POST_OPTIONS,
    SCORE_TENSOR,
    build_tiny_ssd,
    tiny_anchors,
)

from detector.boxes import iou_matrix
from detector.errors import ConfigError, ModelError
from detector.imagefiles import load_images
from detector.model.backends.parity import found_again
from detector.tflite.postprocess import (
    PostProcessParams,
    SsdAnchorSpec,
    decode_boxes_np,
    generate_ssd_anchors,
)
from detector.tflite.reader import read_tflite
from detector.tflite.reference import FrozenGraph, TfliteReference

# The interpreter warns that keeping every tensor is for debugging: that is what the tests do.
pytestmark = pytest.mark.filterwarnings("ignore:.*experimental_preserve_all_tensors")

PARAMS = PostProcessParams.from_flexbuffer(flexbuffers.Dumps(POST_OPTIONS))


# --- fast: no TensorFlow -------------------------------------------------------------------


def test_generated_anchors_follow_the_tf_od_api_spec():
    a = generate_ssd_anchors()
    assert a.shape == (19 * 19 * 3 + (100 + 25 + 9 + 4 + 1) * 6, 4) == (1917, 4)
    # Lowest layer: 3 boxes per cell (0.1 square, then scale 0.2 at aspect 2 and 0.5).
    np.testing.assert_allclose(a[0], [0.5 / 19, 0.5 / 19, 0.1, 0.1], rtol=1e-6)
    np.testing.assert_allclose(
        a[1], [0.5 / 19, 0.5 / 19, 0.2 / np.sqrt(2), 0.2 * np.sqrt(2)], rtol=1e-6
    )
    np.testing.assert_allclose(a[3, :2], [0.5 / 19, 1.5 / 19], rtol=1e-6)  # next column
    # Last layer (1×1): scale 0.95, and the interpolated sqrt(0.95·1.0) square box last.
    np.testing.assert_allclose(a[-6], [0.5, 0.5, 0.95, 0.95], rtol=1e-6)
    np.testing.assert_allclose(a[-1], [0.5, 0.5, np.sqrt(0.95), np.sqrt(0.95)], rtol=1e-6)


def test_anchor_spec_changes_the_count():
    spec = SsdAnchorSpec(
        feature_map_sizes=(2, 1), aspect_ratios=(1.0,), reduce_boxes_in_lowest_layer=False
    )
    assert generate_ssd_anchors(spec).shape == (2 * 2 * 2 + 1 * 2, 4)


def test_decode_zero_encoding_gives_the_anchor_box():
    anchors = np.array([[0.5, 0.25, 0.2, 0.4]], np.float32)
    boxes = decode_boxes_np(np.zeros((1, 1, 4), np.float32), anchors, PARAMS)
    np.testing.assert_allclose(boxes[0, 0], [0.4, 0.05, 0.6, 0.45], rtol=1e-6)


def test_decode_follows_the_centre_size_formula():
    anchors = np.array([[0.5, 0.5, 0.2, 0.1]], np.float32)
    enc = np.array([[[1.0, -2.0, 5.0 * np.log(2.0), -5.0 * np.log(2.0)]]], np.float32)
    yc, xc = 1.0 / 10 * 0.2 + 0.5, -2.0 / 10 * 0.1 + 0.5
    h, w = 2 * 0.2, 0.5 * 0.1
    boxes = decode_boxes_np(enc, anchors, PARAMS)
    np.testing.assert_allclose(
        boxes[0, 0], [yc - h / 2, xc - w / 2, yc + h / 2, xc + w / 2], rtol=1e-5
    )


def test_postprocess_options_from_flexbuffer():
    assert PARAMS.num_classes == 2 and PARAMS.y_scale == 10.0 and PARAMS.h_scale == 5.0
    incomplete = {k: v for k, v in POST_OPTIONS.items() if k != "num_classes"}
    with pytest.raises(ModelError, match="num_classes"):
        PostProcessParams.from_flexbuffer(flexbuffers.Dumps(incomplete))


def test_iou_of_boxes():
    a = np.array([0.0, 0.0, 1.0, 1.0])
    b = np.array([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.5, 1.0], [2.0, 2.0, 3.0, 3.0]])
    np.testing.assert_allclose(iou_matrix(a, b)[0], [1.0, 0.5, 0.0])


def test_reader_refuses_what_is_not_tflite(tmp_path):
    junk = tmp_path / "model.tflite"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(ModelError, match="not a TFLite model") as err:
        read_tflite(junk)
    assert str(junk) in str(err.value) and err.value.hint
    with pytest.raises(ModelError, match="cannot read"):
        read_tflite(tmp_path / "missing.tflite")


def test_option_values_are_checked():
    from detector.tflite.convert import ConvertOptions

    for bad in (
        {"nms_iou": 0.0},
        {"score_threshold": 1.5},
        {"max_detections": 0},
        {"weights": "int4"},
        {"anchors": "guess"},
    ):
        with pytest.raises(ConfigError, match=next(iter(bad))):
            ConvertOptions(**bad).validate()


# --- tiny SSD written in the test (TensorFlow) ---------------------------------------------


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("tiny") / "tiny_ssd.tflite"
    path.write_bytes(build_tiny_ssd())
    return path


@pytest.mark.tf
def test_reader_reads_the_tiny_ssd(tiny):
    m = read_tflite(tiny)
    assert [o.name for o in m.operators][-1] == "TFLite_Detection_PostProcess"
    w = m.tensors[1]
    assert w.shape == (8, 3, 3, 3) and w.data is not None and w.data.dtype == np.uint8
    anchors = m.tensors[ANCHOR_TENSOR]
    np.testing.assert_allclose(anchors.quant.dequantize(anchors.data), tiny_anchors(), atol=1e-6)
    assert m.operators[0].options["stride_h"] == 2 and m.operators[0].options["padding"] == "SAME"


@pytest.mark.tf
def test_reader_refuses_a_truncated_file(tiny, tmp_path):
    cut = tmp_path / "cut.tflite"
    cut.write_bytes(tiny.read_bytes()[: len(tiny.read_bytes()) // 2])
    with pytest.raises(ModelError, match="malformed"):
        read_tflite(cut)


@pytest.mark.tf
def test_converter_refuses_a_model_without_ssd_postprocessing(tmp_path):
    from detector.tflite.convert import convert_tflite_ssd

    path = tmp_path / "classifier.tflite"
    path.write_bytes(build_tiny_ssd(drop_postprocess=True))
    with pytest.raises(ModelError, match="not a TFLite SSD") as err:
        convert_tflite_ssd(path, tmp_path / "out.pb")
    assert "SSD" in err.value.hint
    assert not (tmp_path / "out.pb").exists()


def _run_tiny_both(tiny: Path, out: Path, image: np.ndarray, **options):
    from ai_edge_litert.interpreter import Interpreter

    from detector.tflite.convert import ConvertOptions, convert_tflite_ssd

    report = convert_tflite_ssd(tiny, out, ConvertOptions(**options))
    it = Interpreter(model_path=str(tiny), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], image)
    it.invoke()
    ref = {
        "enc": (it.get_tensor(BOX_TENSOR).astype(np.float32) - 128) * 0.1,
        "scores": it.get_tensor(SCORE_TENSOR).astype(np.float32) / 256,
        "outputs": [it.get_tensor(o["index"]) for o in it.get_output_details()],
    }
    graph = FrozenGraph(out)
    names = ["box_encodings:0", "class_scores:0", "Postprocessor/boxes:0", *graph.fetches]
    got = graph.session.run(names, {"image_tensor:0": image})
    graph.close()
    return report, ref, got


@pytest.mark.tf
@pytest.mark.parametrize("weights", ["float", "uint8"])
def test_tiny_ssd_matches_the_tflite_interpreter(tiny, tmp_path, weights):
    image = np.random.default_rng(1).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    report, ref, got = _run_tiny_both(tiny, tmp_path / "tiny.pb", image, weights=weights)
    enc, scores, boxes, det_boxes, det_scores, det_classes, num = got
    # The float network lands within one uint8 step of the quantized one.
    assert np.abs(enc - ref["enc"]).max() <= 0.1 + 1e-6
    assert np.abs(scores[..., 1:] - ref["scores"][..., 1:]).max() <= 8 / 256
    # In-graph decoding equals the NumPy reference on the graph's own encodings...
    np.testing.assert_allclose(
        boxes[:, :, 0], decode_boxes_np(enc, tiny_anchors(), PARAMS), atol=1e-5
    )
    # ...and the NumPy reference reproduces every box TFLite's own post-processing returned.
    tfl_boxes, _, _, tfl_num = ref["outputs"]
    ref_decoded = decode_boxes_np(ref["enc"], tiny_anchors(), PARAMS)[0]
    for box in tfl_boxes[0, : int(tfl_num[0])]:
        assert np.abs(ref_decoded - box).max(axis=1).min() < 1e-5
    # Top detection: the best (anchor, class) of the graph's own scores, class ids 1-based.
    n = int(num[0])
    assert 1 <= n <= 100 and np.all(np.diff(det_scores[0, :n]) <= 0)
    a, c = np.unravel_index(np.argmax(scores[0, :, 1:]), scores[0, :, 1:].shape)
    assert det_classes[0, 0] == c + 1 and det_scores[0, 0] == pytest.approx(scores[0, a, c + 1])
    np.testing.assert_allclose(det_boxes[0, 0], np.clip(boxes[0, a, 0], 0, 1), atol=1e-6)
    assert set(np.unique(det_classes[0, :n])) <= {1.0, 2.0}
    assert report["options"]["weights"] == weights


@pytest.mark.tf
def test_float_tflite_ssd_converts_too(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    from detector.tflite.convert import convert_tflite_ssd

    path = tmp_path / "float_ssd.tflite"
    path.write_bytes(build_tiny_ssd(float_model=True))
    report = convert_tflite_ssd(path, tmp_path / "float.pb")
    assert report["normalisation"] == {"offset": 127.5, "scale": 1 / 127.5}
    image = np.random.default_rng(3).integers(0, 256, (1, 8, 8, 3), dtype=np.uint8)
    it = Interpreter(model_path=str(path), experimental_preserve_all_tensors=True)
    it.allocate_tensors()
    it.set_tensor(it.get_input_details()[0]["index"], (image.astype(np.float32) - 127.5) / 127.5)
    it.invoke()
    graph = FrozenGraph(tmp_path / "float.pb")
    enc, scores, boxes, scores_out, num = graph.session.run(
        [
            "box_encodings:0",
            "class_scores:0",
            "detection_boxes:0",
            "detection_scores:0",
            "num_detections:0",
        ],
        {"image_tensor:0": image},
    )
    graph.close()
    # Float in, float out: the same arithmetic up to rounding.
    np.testing.assert_allclose(enc, it.get_tensor(BOX_TENSOR), atol=1e-4)
    np.testing.assert_allclose(scores, it.get_tensor(SCORE_TENSOR), atol=1e-5)
    tfl_boxes, _, tfl_scores, tfl_num = (it.get_tensor(o["index"]) for o in it.get_output_details())
    assert int(num[0]) >= int(tfl_num[0]) > 0
    np.testing.assert_allclose(scores_out[0, 0], tfl_scores[0, 0], atol=1e-5)
    np.testing.assert_allclose(boxes[0, 0], np.clip(tfl_boxes[0, 0], 0, 1), atol=1e-5)


@pytest.mark.tf
def test_tiny_ssd_options_and_batches(tiny, tmp_path):
    rng = np.random.default_rng(2)
    img = rng.integers(0, 256, (1, 20, 30, 3), dtype=np.uint8)
    _, _, got = _run_tiny_both(
        tiny,
        tmp_path / "a.pb",
        np.zeros((1, 8, 8, 3), np.uint8),
        max_detections=3,
        score_threshold=0.3,
    )
    assert got[3].shape == (1, 3, 4) and got[4][0][got[4][0] > 0].min() >= 0.3
    graph = FrozenGraph(tmp_path / "a.pb")
    one = graph.session.run(graph.fetches, {"image_tensor:0": img})
    two = graph.session.run(graph.fetches, {"image_tensor:0": np.concatenate([img, img])})
    graph.close()
    for a, b in zip(one, two, strict=True):  # any image size, any batch; each image on its own
        np.testing.assert_allclose(b[1:], a, atol=1e-6)
        np.testing.assert_allclose(b[:1], a, atol=1e-6)


@pytest.mark.tf
def test_conversion_is_deterministic(tiny, tmp_path):
    from detector.tflite.convert import convert_tflite_ssd

    r1 = convert_tflite_ssd(tiny, tmp_path / "1.pb")
    r2 = convert_tflite_ssd(tiny, tmp_path / "2.pb")
    assert (tmp_path / "1.pb").read_bytes() == (tmp_path / "2.pb").read_bytes()
    assert r1["output_sha256"] == r2["output_sha256"]


# --- the real default model (e2e) ----------------------------------------------------------


@pytest.fixture(scope="module")
def real(default_graph, default_tflite, photos_dir):
    images = load_images(
        sorted(p for p in photos_dir.iterdir() if p.suffix in (".jpg", ".png")), rgb=True
    )
    ref = TfliteReference(default_tflite)
    graph = FrozenGraph(default_graph)
    yield {"images": images, "ref": ref, "graph": graph}
    graph.close()


@pytest.mark.e2e
def test_real_model_parity_with_tflite_on_all_photos(real):
    assert len(real["images"]) >= 10
    result = found_again(
        [real["ref"](im) for im in real["images"]], [real["graph"](im) for im in real["images"]]
    )
    assert result["reference"] >= 20, result
    assert result["ratio"] >= 0.95, result
    assert result["median_iou"] >= 0.9, result


@pytest.mark.e2e
def test_real_model_finds_dog_bicycle_car(real, photos_dir):
    (dog,) = load_images([photos_dir / "dog.jpg"], rgb=True)
    found = real["graph"](dog)
    best = {
        c: max((s for s, k in zip(found.scores, found.classes, strict=True) if k == c), default=0.0)
        for c in (18, 2, 3)
    }  # COCO: 18 dog, 2 bicycle, 3 car
    assert all(score >= 0.8 for score in best.values()), best


@pytest.mark.e2e
def test_real_conversion_ops_determinism_and_anchors(default_tflite, default_graph, tmp_path):
    import tensorflow as tf

    from detector.tflite.convert import CONVERTED_OPS, ConvertOptions, convert_tflite_ssd

    report = convert_tflite_ssd(default_tflite, tmp_path / "a.pb")
    graph_def = tf.compat.v1.GraphDef()
    graph_def.ParseFromString((tmp_path / "a.pb").read_bytes())
    assert {n.op for n in graph_def.node} <= CONVERTED_OPS
    assert not graph_def.library.function
    # Same bytes as the graph set-up wrote (same defaults), and as a second conversion.
    assert report["output_sha256"] == hashlib.sha256(default_graph.read_bytes()).hexdigest()
    assert report["anchors"] == 1917
    # Stored anchors are uint8 with a step of 0.00645: generated ones lie within half a step.
    assert report["anchors_max_abs_diff_file_vs_generated"] <= 0.5 * 0.00645306 + 1e-6
    small = convert_tflite_ssd(default_tflite, tmp_path / "u8.pb", ConvertOptions(weights="uint8"))
    assert small["output_bytes"] < report["output_bytes"] / 3


@pytest.mark.e2e
@pytest.mark.parametrize("options", [{"weights": "uint8"}, {"anchors": "generated"}])
def test_real_model_variants_agree_with_the_default(real, default_tflite, tmp_path, options):
    from detector.tflite.convert import ConvertOptions, convert_tflite_ssd

    convert_tflite_ssd(default_tflite, tmp_path / "v.pb", ConvertOptions(**options))
    variant = FrozenGraph(tmp_path / "v.pb")
    images = real["images"][:6]
    result = found_again([real["graph"](im) for im in images], [variant(im) for im in images])
    variant.close()
    assert result["ratio"] == 1.0 and result["median_iou"] > 0.95, result
