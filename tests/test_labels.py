"""Label maps: TF OD API .pbtxt variants, .txt variants, COCO .json, unknown ids, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from detector.errors import ConfigError, ModelError
from detector.labels import LabelMap, load_label_map


def write(tmp_path: Path, name: str, text: str) -> Path:
    p = tmp_path / name
    p.write_text(text, encoding="utf-8")
    return p


def test_pbtxt_full_items_prefer_display_name(tmp_path):
    p = write(
        tmp_path,
        "label_map.pbtxt",
        """
# COCO label map, TF OD API style
item {
  name: "/m/01g317"
  id: 1
  display_name: "person"
}
item {
  name: "/m/0199g"
  id: 2
  display_name: "bicycle"
}
""",
    )
    m = load_label_map(p)
    assert dict(m.names) == {1: "person", 2: "bicycle"}
    assert len(m) == 2
    assert m.path == p


def test_pbtxt_name_only_single_quotes_one_line_and_extra_fields(tmp_path):
    p = write(
        tmp_path,
        "lm.pbtxt",
        "item { id: 3 name: 'car' }  # trailing comment\n"
        "item { name: \"dog\" id: 18 keypoints { id: 1 label: 'nose' } frequency: RARE }\n"
        "item{id:44 name:'bottle' display_name:'Bottle'}\n",
    )
    assert dict(load_label_map(p).names) == {3: "car", 18: "dog", 44: "Bottle"}


def test_pbtxt_detected_by_content_without_suffix(tmp_path):
    p = write(tmp_path, "labels", 'item {\n  id: 5\n  name: "airplane"\n}\n')
    assert dict(load_label_map(p).names) == {5: "airplane"}


def test_pbtxt_syntax_error_quotes_path_and_line(tmp_path):
    p = write(tmp_path, "bad.pbtxt", 'item {\n  id: 1\n  nmae: "person"\n}\n')
    with pytest.raises(ConfigError) as err:
        load_label_map(p)
    msg = str(err.value)
    assert str(p) in msg and "line 3" in msg and "nmae" in msg


def test_pbtxt_item_without_id_or_name(tmp_path):
    with pytest.raises(ConfigError, match="has no id"):
        load_label_map(write(tmp_path, "a.pbtxt", 'item { name: "person" }'))
    with pytest.raises(ConfigError, match="has no name"):
        load_label_map(write(tmp_path, "b.pbtxt", "item { id: 4 }"))


def test_duplicate_id_is_an_error(tmp_path):
    p = write(tmp_path, "dup.pbtxt", 'item { id: 1 name: "a" }\nitem { id: 1 name: "b" }\n')
    with pytest.raises(ConfigError, match="id 1 given twice"):
        load_label_map(p)


def test_txt_one_name_per_line_gives_ids_from_1(tmp_path):
    p = write(tmp_path, "names.txt", "# header\nperson\n\nbicycle\ntraffic light\n")
    assert dict(load_label_map(p).names) == {1: "person", 2: "bicycle", 3: "traffic light"}


def test_txt_zero_based_coco_labels_are_shifted_to_coco_ids(tmp_path):
    # The coco_labels.txt style shipped with the TFLite SSD: 0-based, gaps kept.
    p = write(
        tmp_path,
        "coco_labels.txt",
        "0  person\n1  bicycle\n2  car\n12  stop sign\n89  toothbrush\n",
    )
    m = load_label_map(p)
    assert m.name(1) == "person" and m.name(3) == "car"
    assert m.name(13) == "stop sign" and m.name(90) == "toothbrush"
    assert m.id_for("toothbrush") == 90


def test_txt_one_based_id_lines_kept(tmp_path):
    p = write(tmp_path, "ids.txt", "1 person\n3 car\n")
    assert dict(load_label_map(p).names) == {1: "person", 3: "car"}


def test_txt_id_mode_line_without_id_quotes_line(tmp_path):
    p = write(tmp_path, "mixed.txt", "1 person\n2 bicycle\ncar\n")
    with pytest.raises(ConfigError) as err:
        load_label_map(p)
    assert "line 3" in str(err.value) and str(p) in str(err.value) and "'car'" in str(err.value)


def test_coco_json_categories(tmp_path):
    p = write(
        tmp_path,
        "instances.json",
        json.dumps({"categories": [{"id": 1, "name": "person"}, {"id": 90, "name": "toothbrush"}]}),
    )
    assert dict(load_label_map(p).names) == {1: "person", 90: "toothbrush"}


def test_unknown_id_is_class_n_and_lookup_is_case_insensitive():
    m = LabelMap({1: "person", 18: "dog"})
    assert m.name(18) == "dog"
    assert m.name(77) == "class 77"
    assert m.id_for("DOG") == 18
    assert m.id_for("cat") is None


def test_resolve_classes_names_ids_and_did_you_mean():
    m = LabelMap({1: "person", 3: "car", 18: "dog"})
    assert m.resolve_classes([]) is None
    assert m.resolve_classes(["person", 18, "3"]) == frozenset({1, 3, 18})
    with pytest.raises(ConfigError) as err:
        m.resolve_classes(["persn"])
    assert "detect.classes" in str(err.value) and "'person'" in str(err.value)


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ModelError, match="does not exist"):  # exit 1, like a missing model
        load_label_map(tmp_path / "nope.pbtxt")
    with pytest.raises(ConfigError, match="holds no labels"):
        load_label_map(write(tmp_path, "empty.txt", "# nothing\n\n"))


def test_names_mapping_is_read_only():
    m = LabelMap({1: "person"})
    with pytest.raises(TypeError):
        m.names[2] = "x"  # type: ignore[index]


@pytest.mark.e2e
def test_default_model_label_maps_agree():
    from detector.paths import PROJECT_ROOT

    folder = PROJECT_ROOT / "models" / "ssd_mobilenet_v2_coco"
    pbtxt, txt = folder / "label_map.pbtxt", folder / "source" / "coco_labels.txt"
    if not (pbtxt.is_file() and txt.is_file()):
        pytest.skip("default model not fetched (python main.py fetch)")
    a, b = load_label_map(pbtxt), load_label_map(txt)
    assert dict(a.names) == dict(b.names)  # 0-based coco_labels.txt shifted onto COCO ids
    assert (a.name(1), a.name(18), a.name(90), len(a)) == ("person", "dog", "toothbrush", 80)
