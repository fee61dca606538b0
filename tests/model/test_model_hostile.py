"""Hostile and huge graph files: each a clear refusal or a right answer, never a crash or a hang.

A function library that calls itself and calls nested 20,000 deep end TensorFlow's own
importer with SIGSEGV; constants that declare more memory than the file holds; a frozen
graph over protobuf's 2 GB. Files are built here, byte for byte.
"""

from __future__ import annotations

import numpy as np
import pytest
from helpers.cli_run import run_cli

from detector.errors import ModelError, UnsafeGraphError
from detector.model.graph_limits import MAX_CALL_DEPTH, check_structure
from detector.model.sizes import check_frozen_size, tensor_array

pytestmark = pytest.mark.tf


def _recursive_graph(direct: bool):
    from tensorflow.core.framework import graph_pb2, types_pb2

    g = graph_pb2.GraphDef()
    f = g.library.function.add()
    f.signature.name = "loop"
    f.signature.input_arg.add(name="x", type=types_pb2.DT_FLOAT)
    f.signature.output_arg.add(name="y", type=types_pb2.DT_FLOAT)
    call = f.node_def.add(name="call", op="loop" if direct else "PartitionedCall", input=["x"])
    f.ret["y"] = "call:y:0" if direct else "call:output:0"
    g.node.add(name="x", op="Placeholder").attr["dtype"].type = types_pb2.DT_FLOAT
    top = g.node.add(name="y", op="loop" if direct else "PartitionedCall", input=["x"])
    if not direct:
        for node in (call, top):
            node.attr["f"].func.name = "loop"
            node.attr["Tin"].list.type.append(types_pb2.DT_FLOAT)
            node.attr["Tout"].list.type.append(types_pb2.DT_FLOAT)
    return g


def _nested_graph(depth: int):
    from tensorflow.core.framework import graph_pb2, types_pb2

    g = graph_pb2.GraphDef()
    for i in range(depth):
        f = g.library.function.add()
        f.signature.name = f"f{i}"
        f.signature.input_arg.add(name="x", type=types_pb2.DT_FLOAT)
        f.signature.output_arg.add(name="y", type=types_pb2.DT_FLOAT)
        if i + 1 < depth:
            f.node_def.add(name="call", op=f"f{i + 1}", input=["x"])
            f.ret["y"] = "call:y:0"
        else:
            f.node_def.add(name="id", op="Identity", input=["x"]).attr["T"].type = 1
            f.ret["y"] = "id:output:0"
    g.node.add(name="x", op="Placeholder").attr["dtype"].type = types_pb2.DT_FLOAT
    g.node.add(name="y", op="f0", input=["x"])
    return g


@pytest.mark.parametrize("direct", [True, False], ids=["op-call", "PartitionedCall"])
def test_recursive_function_library_is_refused_not_a_crash(tmp_path, direct):
    path = tmp_path / "rec.pb"
    path.write_bytes(_recursive_graph(direct).SerializeToString())
    with pytest.raises(UnsafeGraphError, match=r"recursive \(loop -> loop\)"):
        check_structure(_recursive_graph(direct), what=str(path))
    if direct:  # the process survives: exit 3 (described, refused), then exit 1 on convert
        result = run_cli("model", "inspect", path)
        assert result.code == 3, result.text
        assert "recursive (loop -> loop)" in result.err
        result = run_cli("model", "convert", path, "-o", tmp_path / "out.pb", "--allow-unsafe-ops")
        result.assert_failed(1, "recursive (loop -> loop)")
        assert not (tmp_path / "out.pb").exists()


def test_call_nesting_is_bounded_and_walked_without_recursion():
    check_structure(_nested_graph(50), what="ok")  # a real model's depth passes
    with pytest.raises(UnsafeGraphError, match=f"nest 20000 deep .*at most {MAX_CALL_DEPTH}"):
        check_structure(_nested_graph(20_000), what="deep")  # Python's stack would not do


def test_constant_that_declares_more_than_it_stores_is_refused_before_allocation():
    from tensorflow.core.framework import tensor_pb2, types_pb2

    proto = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[1.0])
    for size in (10**6, 10**7):  # 4e13 bytes declared, 23 stored
        proto.tensor_shape.dim.add(size=size)
    with pytest.raises(ModelError, match=r"declares .*TiB \(the file stores 23 B"):
        tensor_array(proto, "constant 'w'")
    small = tensor_pb2.TensorProto(dtype=types_pb2.DT_FLOAT, float_val=[2.0])
    small.tensor_shape.dim.add(size=3)
    np.testing.assert_array_equal(tensor_array(small, "c"), [2.0, 2.0, 2.0])


def test_inspect_tensor_of_a_lying_constant_exits_1_with_the_sentence(tmp_path, capsys):
    from tensorflow.core.framework import graph_pb2, types_pb2

    from detector.cli import main

    g = graph_pb2.GraphDef()
    node = g.node.add(name="w", op="Const")
    node.attr["dtype"].type = types_pb2.DT_FLOAT
    tensor = node.attr["value"].tensor
    tensor.dtype = types_pb2.DT_FLOAT
    tensor.float_val.append(1.0)
    for size in (10**6, 10**7):
        tensor.tensor_shape.dim.add(size=size)
    g.node.add(name="y", op="Identity", input=["w"]).attr["T"].type = types_pb2.DT_FLOAT
    path = tmp_path / "lie.pb"
    path.write_bytes(g.SerializeToString())
    assert main(["model", "inspect", str(path), "--tensor", "w"]) == 1
    err = capsys.readouterr().err
    assert "constant 'w' declares" in err and "hint:" in err and "Traceback" not in err


def test_frozen_graph_over_protobufs_limit_is_refused_with_the_way_out():
    check_frozen_size({"small": 10**6}, "ok")
    with pytest.raises(ModelError, match="2 GB") as caught:
        check_frozen_size({"dense/kernel": 3 * 2**30, "b": 10}, "'big.meta'")
    assert "dense/kernel 3.0 GiB" in caught.value.message
    assert "--to saved_model" in (caught.value.hint or "")


def test_tensorflow_stack_traces_stay_out_of_the_message():
    from detector.model.tf_errors import as_model_error, is_tensorflow_error

    exc = ValueError(
        "Cannot create a tensor proto whose content is larger than 2GB.\n\n"
        "Original stack trace for 'dense/kernel':\n  File \"train.py\", line 3, in <module>\n"
    )
    assert is_tensorflow_error(exc)
    err = as_model_error(exc, "model convert")
    assert "larger than 2GB" in err.message and "model convert" in err.message
    assert "Original stack trace" not in str(err) and "train.py" not in str(err)
    assert "--debug" in (err.hint or "")
