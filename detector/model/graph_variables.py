"""Rebuild the variables of a GraphDef that still holds them (the ``tf.io.write_graph`` workflow).

A graph written with ``tf.io.write_graph(sess.graph_def, ...)`` keeps its variable ops and
their initializers but no ``VariableDef``: a MetaGraphDef is made around it whose variable
collection is rebuilt from the nodes, so a checkpoint can be restored into it.
"""

from __future__ import annotations

from typing import Any

from detector.errors import ModelError
from detector.model.safety import strip_saver
from detector.model.session import import_tf

VARIABLE_OPS = frozenset({"VariableV2", "Variable", "VarHandleOp"})


def meta_from_graph_def(graph_def: Any) -> Any:
    """A MetaGraphDef around a checked GraphDef that still holds variables (the
    ``tf.io.write_graph`` + checkpoint workflow): its variables are found from the nodes.

    Ref variables (``VariableV2``) are rebuilt from their ``Assign`` initializer and
    ``<name>/read``; resource variables (``VarHandleOp``) from ``AssignVariableOp``.
    """

    tf = import_tf()
    tf1 = tf.compat.v1
    graph = tf.Graph()
    with graph.as_default():
        tf1.import_graph_def(strip_saver(graph_def), name="")
        made = []
        for node in graph_def.node:
            if node.op not in VARIABLE_OPS:
                continue
            op = graph.get_operation_by_name(node.name)
            init = next(
                (
                    c
                    for c in op.outputs[0].consumers()
                    if c.type in ("Assign", "AssignVariableOp") and c.inputs[0].op is op
                ),
                None,
            )
            if init is None:
                raise ModelError(
                    f"variable '{node.name}' in the graph has no initializer (Assign) node",
                    hint="write the graph after building the model with its initializers "
                    "(tf.io.write_graph(sess.graph_def, ...))",
                )
            snapshot = init.inputs[1]
            resource = node.op == "VarHandleOp"
            vdef = _variable_def(node.name, init.name, snapshot.name, graph, resource=resource)
            if resource:
                from tensorflow.python.ops import resource_variable_ops

                var = resource_variable_ops.ResourceVariable(variable_def=vdef)
            else:
                from tensorflow.python.ops import ref_variable

                var = ref_variable.RefVariable(variable_def=vdef)
            made.append(var)
        for var in made:
            tf1.add_to_collection(tf1.GraphKeys.GLOBAL_VARIABLES, var)
        return tf1.train.export_meta_graph(graph=graph)


def _variable_def(name: str, init: str, snapshot: str, graph: Any, *, resource: bool) -> Any:
    """The ``VariableDef`` of a resource (``VarHandleOp``) or ref variable: its initializer
    and initial value; a ref variable also reads through ``<name>/read`` when there is one."""
    from tensorflow.core.framework import variable_pb2

    kind: dict[str, Any] = {"is_resource": True}
    if not resource:
        read = f"{name}/read:0"
        try:
            graph.get_tensor_by_name(read)
        except KeyError:
            read = f"{name}:0"
        kind = {"snapshot_name": read}
    return variable_pb2.VariableDef(
        variable_name=f"{name}:0",
        initializer_name=init,
        initial_value_name=snapshot,
        trainable=True,
        **kind,
    )
