"""Refuse graphs whose ops could touch files, the network or Python before anything is imported.

A TensorFlow graph is a program: ``ReadFile``/``WriteFile``, readers, datasets and
``PyFunc`` run with the user's rights the moment a session evaluates them. Every node of
a graph, and of every function in its library (``If``/``While``/``PartitionedCall``
bodies, checked recursively through the call sites), must use an op from
:data:`ALLOWED_OPS`. Save and restore ops are only accepted inside a MetaGraph's saver
subgraphs, where nothing else in the graph reads them (and no save op where the restore
op, which loading a SavedModel runs, reads): a frozen graph never needs them, and the
toolkit restores checkpoints with ``tf.train.load_checkpoint`` instead of running a
``.meta``'s ``save/restore_all``.
"""

from __future__ import annotations

import logging
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from google.protobuf import text_format

from detector.errors import ModelError, UnsafeGraphError
from detector.model.graph_limits import check_structure

log = logging.getLogger(__name__)


def _ops(text: str) -> frozenset[str]:
    """A frozenset from whitespace-separated names (a readable way to list many ops)."""
    return frozenset(text.split())


#: Standard compute ops: math, nn, image, array, control flow, variables, strings, tables.
ALLOWED_OPS: frozenset[str] = _ops("""
    Abs Acos Acosh Add AddN AddV2 All Any ApproximateEqual ArgMax ArgMin Asin Asinh Atan
    Atan2 Atanh BatchMatMul BatchMatMulV2 BatchMatMulV3 Betainc BitwiseAnd BitwiseOr
    BitwiseXor Cast Ceil ClipByValue Complex ComplexAbs Conj Cos Cosh Cross Cumprod Cumsum
    CumulativeLogsumexp Digamma Div DivNoNan Equal Erf Erfc Erfinv EuclideanNorm Exp Expm1
    Floor FloorDiv FloorMod Greater GreaterEqual Igamma Igammac Imag Inv Invert IsFinite
    IsInf IsNan LeftShift Less LessEqual Lgamma LinSpace Log Log1p LogicalAnd LogicalNot
    LogicalOr MatMul Max Maximum Mean Min Minimum Mod Mul MulNoNan Neg NextAfter NotEqual
    PopulationCount Pow Prod Range Real RealDiv Reciprocal RightShift Rint Round Rsqrt
    SegmentMax SegmentMean SegmentMin SegmentProd SegmentSum Select SelectV2 Sign Sin Sinh
    SparseMatMul Sqrt Square SquaredDifference Sub Sum Tan Tanh TruncateDiv TruncateMod
    UnsortedSegmentMax UnsortedSegmentMin UnsortedSegmentProd UnsortedSegmentSum Xdivy
    Xlog1py Xlogy Zeta Bucketize HistogramFixedWidth Einsum MatrixBandPart MatrixDiag
    MatrixDiagPart MatrixDiagPartV2 MatrixDiagPartV3 MatrixDiagV2 MatrixDiagV3
    MatrixInverse MatrixSetDiag MatrixSetDiagV2 MatrixSetDiagV3 MatrixSolve
    MatrixTriangularSolve MatrixDeterminant Cholesky Qr Svd SelfAdjointEigV2

    AvgPool AvgPool3D BiasAdd BiasAddV1 Conv2D Conv3D Conv2DBackpropInput
    Conv3DBackpropInputV2 DepthwiseConv2dNative DepthwiseConv2dNativeBackpropInput
    Dilation2D Elu FusedBatchNorm FusedBatchNormV2 FusedBatchNormV3
    BatchNormWithGlobalNormalization InTopK InTopKV2 L2Loss LRN LeakyRelu LogSoftmax
    MaxPool MaxPool3D MaxPoolV2 MaxPoolWithArgmax Relu Relu6 Selu Sigmoid Softmax
    SoftmaxCrossEntropyWithLogits SparseSoftmaxCrossEntropyWithLogits Softplus Softsign
    TopK TopKV2 NthElement FakeQuantWithMinMaxArgs FakeQuantWithMinMaxVars
    FakeQuantWithMinMaxVarsPerChannel QuantizeAndDequantizeV2 QuantizeAndDequantizeV3
    QuantizeAndDequantizeV4 QuantizeV2 Dequantize
    AvgPoolGrad BiasAddGrad Conv2DBackpropFilter DepthwiseConv2dNativeBackpropFilter
    EluGrad FusedBatchNormGrad FusedBatchNormGradV2 FusedBatchNormGradV3 LeakyReluGrad
    MaxPoolGrad MaxPoolGradV2 MaxPoolGradGrad Relu6Grad ReluGrad RsqrtGrad SeluGrad
    SigmoidGrad SoftplusGrad SoftsignGrad SqrtGrad TanhGrad ReciprocalGrad InvGrad
    BroadcastGradientArgs ResizeBilinearGrad ResizeNearestNeighborGrad StridedSliceGrad
    TileGrad MirrorPadGrad PreventGradient StopGradient

    AdjustContrastv2 AdjustHue AdjustSaturation CropAndResize DecodeBmp DecodeGif
    DecodeImage DecodeJpeg DecodeAndCropJpeg DecodePng EncodeJpeg EncodePng ExtractJpegShape
    DrawBoundingBoxes DrawBoundingBoxesV2 ExtractImagePatches HSVToRGB RGBToHSV
    ResizeArea ResizeBicubic ResizeBilinear ResizeNearestNeighbor ScaleAndTranslate
    ImageProjectiveTransformV2 ImageProjectiveTransformV3 NonMaxSuppression
    NonMaxSuppressionV2 NonMaxSuppressionV3 NonMaxSuppressionV4 NonMaxSuppressionV5
    NonMaxSuppressionWithOverlaps CombinedNonMaxSuppression GenerateBoundingBoxProposals
    SampleDistortedBoundingBoxV2 StatelessSampleDistortedBoundingBox

    BatchToSpace BatchToSpaceND Bitcast BroadcastArgs BroadcastTo CheckNumerics
    CheckNumericsV2 Concat ConcatOffset ConcatV2 Const DataFormatDimMap
    DataFormatVecPermute DepthToSpace Diag DiagPart DynamicPartition DynamicStitch Empty
    EnsureShape ExpandDims Fill Gather GatherNd GatherV2 GuaranteeConst Identity IdentityN
    InplaceAdd InplaceSub InplaceUpdate InvertPermutation ListDiff LowerBound MirrorPad
    OneHot OnesLike Pack Pad PadV2 ParallelConcat ParallelDynamicStitch Placeholder
    PlaceholderV2 PlaceholderWithDefault Rank Reshape Reverse ReverseSequence ReverseV2
    Roll ScatterNd ScatterNdNonAliasingAdd Shape ShapeN Size Slice Snapshot SpaceToBatch
    SpaceToBatchND SpaceToDepth Split SplitV Squeeze StridedSlice TensorScatterAdd
    TensorScatterMax TensorScatterMin TensorScatterSub TensorScatterUpdate
    TensorStridedSliceUpdate Tile Transpose ConjugateTranspose Unique UniqueV2
    UniqueWithCounts UniqueWithCountsV2 Unpack UnravelIndex UpperBound Where ZerosLike
    SparseToDense SparseReshape SparseTensorDenseMatMul SparseTensorDenseAdd
    SparseFillEmptyRows SparseReorder SparseSegmentMean SparseSegmentSqrtN SparseSegmentSum
    SparseSegmentMeanWithNumSegments SparseSegmentSqrtNWithNumSegments
    SparseSegmentSumWithNumSegments SparseConcat SparseSlice SparseAdd

    NoOp ControlTrigger Assert Print Switch Merge Enter Exit NextIteration LoopCond
    RefSwitch RefMerge RefEnter RefExit RefNextIteration RefIdentity RefSelect If
    StatelessIf While StatelessWhile Case StatelessCase PartitionedCall
    StatefulPartitionedCall SymbolicGradient For _Arg _Retval _If _While
    TensorArrayV3 TensorArrayReadV3 TensorArrayWriteV3 TensorArrayGatherV3
    TensorArrayScatterV3 TensorArraySizeV3 TensorArrayCloseV3 TensorArrayConcatV3
    TensorArraySplitV3 TensorArrayGradV3 TensorArrayGradWithShape TensorArrayV2
    TensorArrayReadV2 TensorArrayWriteV2 TensorArrayGatherV2 TensorArrayScatterV2
    TensorArraySizeV2 TensorArrayCloseV2 TensorArrayConcatV2 TensorArraySplitV2
    TensorArrayGradV2 EmptyTensorList TensorListConcat TensorListConcatV2
    TensorListElementShape TensorListFromTensor TensorListGather TensorListGetItem
    TensorListLength TensorListPopBack TensorListPushBack TensorListPushBackBatch
    TensorListReserve TensorListResize TensorListScatter TensorListScatterIntoExistingList
    TensorListScatterV2 TensorListSetItem TensorListSplit TensorListStack StackV2
    StackPushV2 StackPopV2 StackCloseV2 OptionalFromValue OptionalGetValue
    OptionalHasValue OptionalNone

    Variable VariableV2 VarHandleOp ReadVariableOp AssignVariableOp AssignAddVariableOp
    AssignSubVariableOp VarIsInitializedOp IsVariableInitialized VariableShape Assign
    AssignAdd AssignSub DestroyResourceOp DisableCopyOnRead ResourceGather
    ResourceGatherNd ScatterAdd ScatterDiv ScatterMax ScatterMin ScatterMul ScatterNdAdd
    ScatterNdSub ScatterNdUpdate ScatterSub ScatterUpdate ResourceScatterAdd
    ResourceScatterDiv ResourceScatterMax ResourceScatterMin ResourceScatterMul
    ResourceScatterNdAdd ResourceScatterNdSub ResourceScatterNdUpdate ResourceScatterSub
    ResourceScatterUpdate ResourceStridedSliceAssign StridedSliceAssign CountUpTo
    ResourceCountUpTo ApplyAdadelta ApplyAdagrad ApplyAdagradV2 ApplyAdam ApplyAdaMax
    ApplyCenteredRMSProp ApplyFtrl ApplyFtrlV2 ApplyGradientDescent ApplyMomentum
    ApplyRMSProp ResourceApplyAdadelta ResourceApplyAdagrad ResourceApplyAdagradV2
    ResourceApplyAdam ResourceApplyAdaMax ResourceApplyAdamWithAmsgrad
    ResourceApplyCenteredRMSProp ResourceApplyFtrl ResourceApplyFtrlV2
    ResourceApplyGradientDescent ResourceApplyKerasMomentum ResourceApplyMomentum
    ResourceApplyRMSProp ResourceSparseApplyAdagrad ResourceSparseApplyMomentum
    SparseApplyAdagrad SparseApplyMomentum

    RandomStandardNormal RandomUniform RandomUniformInt TruncatedNormal RandomShuffle
    Multinomial RandomGamma RandomPoisson RandomPoissonV2 StatelessRandomNormal
    StatelessRandomNormalV2 StatelessRandomUniform StatelessRandomUniformV2
    StatelessRandomUniformInt StatelessRandomUniformIntV2 StatelessRandomUniformFullInt
    StatelessRandomUniformFullIntV2 StatelessTruncatedNormal StatelessTruncatedNormalV2
    StatelessRandomGetKeyCounter StatelessRandomGetAlg StatelessRandomGetKeyCounterAlg
    StatelessMultinomial StatelessShuffle RngReadAndSkip RngSkip

    AsString DecodeBase64 EncodeBase64 ReduceJoin RegexFullMatch RegexReplace
    StaticRegexFullMatch StaticRegexReplace StringFormat StringJoin StringLength
    StringLower StringUpper StringSplit StringSplitV2 StringStrip StringToHashBucket
    StringToHashBucketFast StringToHashBucketStrong StringToNumber Substr
    UnicodeDecode UnicodeDecodeWithOffsets UnicodeEncode UnicodeScript UnicodeTranscode
    ShardedFilename ShardedFilespec Fingerprint DecodeRaw DecodeCSV DecodeJSONExample
    ParseExample ParseExampleV2 ParseSingleExample ParseSequenceExample
    ParseSequenceExampleV2 ParseSingleSequenceExample ParseTensor SerializeTensor
    RaggedGather RaggedRange RaggedTensorToTensor RaggedTensorToSparse
    RaggedTensorFromVariant RaggedTensorToVariant

    HashTable HashTableV2 MutableHashTable MutableHashTableV2 MutableHashTableOfTensorsV2
    MutableDenseHashTableV2 AnonymousHashTable InitializeTable InitializeTableV2
    LookupTableFind LookupTableFindV2 LookupTableSize LookupTableSizeV2 LookupTableImportV2
    LookupTableExportV2 LookupTableInsertV2 LookupTableRemoveV2
    FIFOQueueV2 PaddingFIFOQueueV2 RandomShuffleQueueV2 QueueEnqueueV2
    QueueEnqueueManyV2 QueueDequeueV2 QueueDequeueManyV2 QueueDequeueUpToV2 QueueCloseV2
    QueueSizeV2 QueueIsClosedV2 ScalarSummary HistogramSummary ImageSummary AudioSummaryV2
    TensorSummary TensorSummaryV2 MergeSummary Timestamp
""")

#: Ops that write or delete files: allowed only in a MetaGraph's save subgraph.
SAVE_OPS: frozenset[str] = _ops("SaveV2 Save SaveSlices MergeV2Checkpoints")
#: Ops that read checkpoint files: allowed only in a MetaGraph's restore subgraph.
RESTORE_OPS: frozenset[str] = _ops("RestoreV2 Restore RestoreSlice")

#: Where ``PrintV2`` may write; any other ``output_stream`` is a file path.
_PRINT_STREAMS = frozenset({"stderr", "stdout", "log(info)", "log(warning)", "log(error)"})
_HINT = (
    "these ops can read or write files, reach the network or run Python code; if you "
    "trust this file, pass --allow-unsafe-ops (config: model.allow_unsafe_ops: true)"
)

_SAVE, _RESTORE, _OTHER, _DORMANT = "save", "restore", "other", "dormant"
#: Name scopes ``tf.train.Saver`` builds its subgraph in (``save/``, ``save_1/``, ...).
_SAVER_SCOPE = re.compile(r"^save(_\d+)?/")


def _why(op: str) -> str:
    """A few words on why an op is refused, for the message."""
    if op in SAVE_OPS or op in RESTORE_OPS:
        return "checkpoint file I/O outside the saver"
    if "PyFunc" in op:
        return "runs Python code"
    if op.endswith("Dataset") or "Iterator" in op:
        return "input pipeline (reads files)"
    if "Reader" in op or "Writer" in op or "File" in op or op in ("WriteFile", "ReadFile"):
        return "file I/O"
    if op in ("Send", "Recv", "RemoteCall") or op.startswith(("Collective", "Nccl")):
        return "network"
    if op == "PrintV2":
        return "prints to a file"
    return "not on the allowlist"


def _func_names(node: Any) -> Iterator[str]:
    """Functions a node calls: every ``func``/``list(func)`` attr, and the op itself."""
    for value in node.attr.values():
        if value.HasField("func"):
            yield value.func.name
        elif value.HasField("list"):
            yield from (f.name for f in value.list.func)


def _node_problem(node: Any, context: frozenset[str], functions: set[str]) -> str | None:
    """Why this node is refused in this context, or None when it is fine."""
    op = node.op
    if op in functions:  # a direct call of a library function: checked through the library
        return None
    if op in SAVE_OPS:
        return None if not context & {_OTHER, _RESTORE} else _why(op)
    if op in RESTORE_OPS:
        return None if _OTHER not in context else _why(op)
    if op == "PrintV2":
        stream = node.attr["output_stream"].s.decode() if "output_stream" in node.attr else ""
        return None if stream in ("", *_PRINT_STREAMS) else f"prints to file {stream!r}"
    if op in ALLOWED_OPS:
        return None
    return _why(op)


def _ancestors(nodes: dict[str, Any], roots: Iterable[str]) -> set[str]:
    """Names of ``roots`` and every node they read from (data and control inputs)."""
    seen: set[str] = set()
    stack = [r.lstrip("^").split(":")[0] for r in roots if r]
    while stack:
        name = stack.pop()
        if name in seen or name not in nodes:
            continue
        seen.add(name)
        stack.extend(i.lstrip("^").split(":")[0] for i in nodes[name].input)
    return seen


@dataclass(frozen=True)
class _Contexts:
    """When each node of a graph can run: with the graph's use, when saving, when restoring."""

    exposed: set[str]
    save_set: set[str]
    restore_set: set[str]

    @classmethod
    def of(cls, nodes: dict[str, Any], saver_def: Any | None, roots: Iterable[str]) -> _Contexts:
        save_set: set[str] = set()
        restore_set: set[str] = set()
        protected: set[str] = set()
        if saver_def is not None and (saver_def.save_tensor_name or saver_def.restore_op_name):
            save_set = _ancestors(nodes, [saver_def.save_tensor_name])
            restore_set = _ancestors(nodes, [saver_def.restore_op_name])
            protected = save_set | restore_set | {n for n in nodes if _SAVER_SCOPE.match(n)}
        # Whatever the rest of the graph (its outputs, train ops, initializers) reads can run
        # when the graph is used: save and restore ops there are refused. A saver's own
        # subgraph runs only when asked for; an older saver's (``save/`` beside ``save_1/``
        # after a re-save) lies dormant: nothing here ever runs it.
        exposed = _ancestors(nodes, [n for n in nodes if n not in protected] + list(roots))
        return cls(exposed, save_set, restore_set)

    def context_of(self, name: str) -> frozenset[str]:
        if name in self.exposed:
            return frozenset({_OTHER})
        ctx = {_SAVE} if name in self.save_set else set()
        if name in self.restore_set:
            ctx.add(_RESTORE)
        return frozenset(ctx or {_DORMANT})


def _problems(
    graph_def: Any, saver_def: Any | None, roots: Iterable[str] = ()
) -> list[tuple[str, str, str | None, str]]:
    """``(op, node, function or None, reason)`` for every refused node of the graph."""
    nodes = {n.name: n for n in graph_def.node}
    library = {f.signature.name: f for f in graph_def.library.function}
    functions = set(library)
    contexts = _Contexts.of(nodes, saver_def, roots)
    found: list[tuple[str, str, str | None, str]] = []
    pending: list[tuple[str, frozenset[str]]] = []
    for node in graph_def.node:
        ctx = contexts.context_of(node.name)
        reason = _node_problem(node, ctx, functions)
        if reason:
            found.append((node.op, node.name, None, reason))
        for fn in [*_func_names(node), node.op]:
            if fn in library:
                pending.append((fn, ctx))
    return found + _library_problems(library, _function_contexts(library, pending))


def _function_contexts(
    library: dict[str, Any], pending: list[tuple[str, frozenset[str]]]
) -> dict[str, set[str]]:
    """The contexts each function is called from, followed through the calls it makes.

    A function reached from two contexts must satisfy both, so a save function also called
    at inference time is refused.
    """
    func_ctx: dict[str, set[str]] = defaultdict(set)
    while pending:
        fn, ctx = pending.pop()
        if ctx <= func_ctx[fn]:
            continue
        func_ctx[fn] |= ctx
        for node in library[fn].node_def:
            for callee in [*_func_names(node), node.op]:
                if callee in library:
                    pending.append((callee, frozenset(func_ctx[fn])))
    return func_ctx


def _library_problems(
    library: dict[str, Any], func_ctx: dict[str, set[str]]
) -> list[tuple[str, str, str | None, str]]:
    """The refused nodes inside the library's functions, each in its callers' contexts."""
    found: list[tuple[str, str, str | None, str]] = []
    functions = set(library)
    for fn, fdef in library.items():
        ctx = frozenset(func_ctx.get(fn) or {_OTHER})
        for node in fdef.node_def:
            reason = _node_problem(node, ctx, functions)
            if reason:
                found.append((node.op, node.name, fn, reason))
            for value in node.attr.values():  # a call to a function the library lacks
                if value.HasField("func") and value.func.name and value.func.name not in library:
                    found.append(
                        (node.op, node.name, fn, f"calls unknown function {value.func.name!r}")
                    )
    return found


def _report(
    found: list[tuple[str, str, str | None, str]], what: str, allow_unsafe_ops: bool
) -> None:
    if not found:
        return
    by_op: dict[tuple[str, str], list[str]] = defaultdict(list)
    for op, node, fn, reason in found:
        by_op[(op, reason)].append(f"'{node}'" + (f" in function '{fn}'" if fn else ""))
    parts = []
    for (op, reason), where in sorted(by_op.items()):
        shown = ", ".join(where[:5]) + (f" and {len(where) - 5} more" if len(where) > 5 else "")
        parts.append(f"{op} ({reason}) at {shown}")
    detail = "; ".join(parts)
    if allow_unsafe_ops:
        log.warning(
            "%s holds ops outside the allowlist, accepted by --allow-unsafe-ops: %s", what, detail
        )
        return
    raise UnsafeGraphError(
        f"refusing graph '{what}': {len(by_op)} op kind(s) outside the allowlist: {detail}",
        hint=_HINT,
    )


def check_graph_def(graph_def: Any, *, what: str, allow_unsafe_ops: bool = False) -> None:
    """Refuse a GraphDef (frozen ``.pb``/``.pbtxt``) holding ops outside the allowlist.

    Every node and every function of its library is checked. Save and restore ops are
    accepted only in a ``tf.train.Saver`` subgraph nothing else reads (a graph written by
    ``tf.io.write_graph`` with its saver, see :func:`implicit_saver`); anywhere else they
    are refused.

    Args:
        graph_def: A ``tf.compat.v1.GraphDef``.
        what: The file or object it came from, quoted in the message.
        allow_unsafe_ops: Log the refused ops as a warning instead of raising.

    Raises:
        UnsafeGraphError: Naming each refused op, its nodes and functions.
    """
    check_structure(graph_def, what=what)
    _report(_problems(graph_def, implicit_saver(graph_def)), what, allow_unsafe_ops)


def implicit_saver(graph_def: Any) -> Any | None:
    """A SaverDef for the ``tf.train.Saver`` subgraph a plain GraphDef carries, or None.

    ``tf.io.write_graph(sess.graph_def, ...)`` after building a Saver writes its ``save/``
    scope (``SaveV2``, ``RestoreV2``, ``restore_all``) with no SaverDef to say so. That
    subgraph is recognised by its scope and its two roots, so its save and restore ops are
    judged like a ``.meta``'s saver: allowed only where nothing else in the graph reads
    them. :func:`strip_saver` removes it before anything is imported.
    """
    from tensorflow.core.protobuf import saver_pb2

    names = {n.name for n in graph_def.node}
    scopes = sorted(
        {
            m.group(0)
            for n in graph_def.node
            if n.op in SAVE_OPS | RESTORE_OPS and (m := _SAVER_SCOPE.match(n.name))
        },
        key=lambda sc: (len(sc), sc),
    )
    if not scopes:
        return None
    scope = scopes[-1]  # the newest saver (save_1/ after save/)
    save = next(
        (f"{scope}{t}" for t in ("control_dependency", "Const") if f"{scope}{t}" in names), ""
    )
    restore = f"{scope}restore_all" if f"{scope}restore_all" in names else ""
    return saver_pb2.SaverDef(save_tensor_name=f"{save}:0" if save else "", restore_op_name=restore)


def strip_saver(graph_def: Any) -> Any:
    """A copy of ``graph_def`` without its saver scopes (``save/``, ``save_1/``, ...) when
    nothing outside them reads them; the graph unchanged otherwise."""
    saver_nodes = {n.name for n in graph_def.node if _SAVER_SCOPE.match(n.name)}
    if not saver_nodes:
        return graph_def
    outside = [n for n in graph_def.node if n.name not in saver_nodes]
    read = {i.lstrip("^").split(":")[0] for n in outside for i in n.input}
    if read & saver_nodes:
        return graph_def
    out = type(graph_def)()
    out.CopyFrom(graph_def)
    del out.node[:]
    out.node.extend(outside)
    return out


def check_meta_graph(meta_graph_def: Any, *, what: str, allow_unsafe_ops: bool = False) -> None:
    """Refuse a MetaGraphDef (``.meta`` or one graph of a SavedModel) with unsafe ops.

    Save ops are accepted only in the saver's own subgraph (the ancestry of
    ``saver_def.save_tensor_name``, or an older saver's ``save_N/`` scope that nothing
    else reads), never in the ancestry of ``saver_def.restore_op_name`` (which loading a
    SavedModel runs); restore ops only there. Anywhere the rest of the graph or a
    signature output reads from, both are refused, in functions too.

    Args:
        meta_graph_def: A ``tf.compat.v1.MetaGraphDef``.
        what: The file or object it came from, quoted in the message.
        allow_unsafe_ops: Log the refused ops as a warning instead of raising.

    Raises:
        UnsafeGraphError: Naming each refused op, its nodes and functions.
    """
    check_structure(meta_graph_def.graph_def, what=what)
    saver = (
        meta_graph_def.saver_def
        if meta_graph_def.HasField("saver_def")
        else implicit_saver(meta_graph_def.graph_def)
    )
    outputs = [
        t.name for sig in meta_graph_def.signature_def.values() for t in sig.outputs.values()
    ]
    _report(_problems(meta_graph_def.graph_def, saver, outputs), what, allow_unsafe_ops)


def parse_saved_model(path: str | Path) -> Any:
    """Parse a SavedModel folder's ``saved_model.pb`` (or ``.pbtxt``); nothing is imported.

    Raises:
        ModelError: The folder holds no parsable ``saved_model.pb``.
    """
    from tensorflow.core.protobuf import saved_model_pb2

    folder = Path(path)
    saved = saved_model_pb2.SavedModel()
    pb, pbtxt = folder / "saved_model.pb", folder / "saved_model.pbtxt"
    try:
        if pb.is_file():
            saved.ParseFromString(pb.read_bytes())
        elif pbtxt.is_file():
            text_format.Parse(pbtxt.read_text(encoding="utf-8"), saved)
        else:
            raise ModelError(
                f"'{folder}' holds no saved_model.pb",
                hint="a SavedModel folder has saved_model.pb and variables/",
            )
    except ModelError:
        raise
    except Exception as exc:
        raise ModelError(
            f"cannot parse SavedModel '{pb}': {exc}",
            hint="is the file complete? re-export or re-copy the SavedModel",
        ) from exc
    return saved


def check_saved_model(path: str | Path, *, allow_unsafe_ops: bool = False) -> Any:
    """Parse a SavedModel folder without loading it, check every MetaGraph, return the proto.

    Raises:
        ModelError: The folder holds no parsable ``saved_model.pb``.
        UnsafeGraphError: A MetaGraph holds ops outside the allowlist.
    """
    folder = Path(path)
    saved = parse_saved_model(folder)
    for meta in saved.meta_graphs:
        tags = ",".join(meta.meta_info_def.tags) or "no tags"
        check_meta_graph(meta, what=f"{folder} [{tags}]", allow_unsafe_ops=allow_unsafe_ops)
    return saved
