"""Small edits of a converted ONNX graph so it takes what the server decodes.

The server hands every backend the request matrix it decoded: float64, in signature column
order. Converters name and type inputs their own way (one per column for a ColumnTransformer,
float32 for a float32 estimator, sanitised names); these functions put the graph's inputs back
into that one shape, inside the graph, where it costs microseconds.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from modelwerk.runtime import compiled


def name_inputs(model: Any, columns: list[str]) -> None:
    """Give the graph's inputs the column names back (converters may sanitise them)."""
    graph = model.graph
    for declared, column in zip(list(graph.input), columns, strict=True):
        if declared.name == column:
            continue
        old = declared.name
        declared.name = column
        for node in graph.node:
            for k, name in enumerate(node.input):
                if name == old:
                    node.input[k] = column


def double_input(model: Any) -> None:
    """A float32 matrix input becomes a float64 one cast inside the graph (the server always
    sends the float64 matrix it decoded)."""
    from onnx import TensorProto, helper

    graph = model.graph
    declared = graph.input[0]
    elem = declared.type.tensor_type.elem_type
    if elem == TensorProto.DOUBLE:
        return
    staged = f"{compiled.INPUT}__cast"
    for node in graph.node:
        for k, name in enumerate(node.input):
            if name == declared.name:
                node.input[k] = staged
    cast = helper.make_node("Cast", [compiled.INPUT], [staged], to=elem, name=staged)
    nodes = [cast, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    width = declared.type.tensor_type.shape.dim[1].dim_value or None
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info(compiled.INPUT, TensorProto.DOUBLE, [None, width])
    )


def single_input(model: Any, columns: list[str]) -> Any:
    """Put one float64 ``X`` [n, columns] in front of a model taking one input per column.

    The server decodes requests into exactly that matrix; splitting it (and casting integer
    columns) inside the graph costs microseconds, building per-column tensors in Python would
    cost more than the whole prediction.
    """
    from onnx import TensorProto, helper, numpy_helper

    graph = model.graph
    declared = {i.name: i for i in graph.input}
    split_outputs, casts = [], []
    for name in columns:
        elem = declared[name].type.tensor_type.elem_type
        if elem == TensorProto.DOUBLE:
            split_outputs.append(name)
        else:
            staged = f"{name}__x"
            split_outputs.append(staged)
            casts.append(helper.make_node("Cast", [staged], [name], to=elem))
    opset = next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), 18)
    name = f"{compiled.INPUT}__split"
    if opset >= 13:  # the sizes became an input in opset 13
        sizes = numpy_helper.from_array(np.ones(len(columns), dtype=np.int64), name)
        graph.initializer.append(sizes)
        split = helper.make_node("Split", [compiled.INPUT, name], split_outputs, axis=1, name=name)
    else:
        split = helper.make_node(
            "Split", [compiled.INPUT], split_outputs, axis=1, split=[1] * len(columns), name=name
        )
    nodes = [split, *casts, *graph.node]
    del graph.node[:]
    graph.node.extend(nodes)
    del graph.input[:]
    graph.input.append(
        helper.make_tensor_value_info(compiled.INPUT, TensorProto.DOUBLE, [None, len(columns)])
    )
    return model
