"""ONNX file -> :class:`Model` through ``tvm.relax.frontend.onnx.from_onnx``.

Before TVM sees the graph, it is normalised so that weights become named parameters of ``main``:

* (after import) legacy ``Upsample`` nearest gets ONNX's floor rounding (TVM's importer uses
  round; see :mod:`.fix_upsample_rounding`);
* graph inputs that are also initializers (ONNX IR < 4 exporters list every weight as an input)
  are weights, not inputs;
* ``Constant`` nodes holding tensors (PaddlePaddle exports store weights this way) and
  initializers are sorted into *weights*, float tensors feeding a weight slot of a layer
  (``WEIGHT_SLOTS``), and *constants*, everything else (shapes, scales, axes, scalars). Weights
  become Relax parameters; constants become ``Constant`` nodes so that TVM folds them, as shape
  arguments must be.

Every problem is found before conversion and reported in one line: missing or corrupt file,
operators TVM cannot convert (all of them, with node names), dynamic input dimensions that
``input_shapes`` does not fix.
"""

from __future__ import annotations

import contextlib
import io
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import helper

from ..errors import (
    InputShapeError,
    ModelLoadError,
    UnsupportedOpError,
    first_line,
    not_a_file,
)
from ..model import Model, TensorSpec
from .fix_upsample_rounding import FixUpsampleRounding

# Input positions that hold a layer's learned tensors. Elementwise ops and MatMul count only for
# tensors with more than one element: scalars there are constants of the formula (HardSwish's 3).
WEIGHT_SLOTS: Mapping[str, tuple[int, ...]] = {
    "Conv": (1, 2),
    "ConvTranspose": (1, 2),
    "Gemm": (1, 2),
    "BatchNormalization": (1, 2, 3, 4),
    "InstanceNormalization": (1, 2),
    "LayerNormalization": (1, 2),
    "PRelu": (1,),
    "MatMul": (0, 1),
    "Add": (0, 1),
    "Sub": (0, 1),
    "Mul": (0, 1),
    "Div": (0, 1),
}
_ELEMENTWISE_SLOTS = {"MatMul", "Add", "Sub", "Mul", "Div"}
_FLOAT_TYPES = {onnx.TensorProto.FLOAT, onnx.TensorProto.FLOAT16, onnx.TensorProto.DOUBLE}


def load_onnx(
    path: str | Path,
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> Model:
    """Import an ONNX file.

    Parameters
    ----------
    path : str or Path
        The ``.onnx`` file (external data is read from its directory).
    input_shapes : Mapping[str, Sequence[int]], optional
        Static shapes for inputs, keyed by ONNX input name; required for inputs with dynamic
        dimensions, allowed for any input.

    Returns
    -------
    Model
        ``main(*inputs, *weights)`` with the weights in ``Model.params``.
    """
    path = Path(path)
    proto = _read(path)
    _check_ops(path, proto.graph)
    _check_model(path, proto)
    inputs = _input_specs(path, proto.graph, dict(input_shapes or {}))
    normalised = _split_weights(proto)
    return _import(path, normalised, inputs)


def _read(path: Path) -> onnx.ModelProto:
    if not path.is_file():
        raise ModelLoadError(not_a_file(path))
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # protobuf raises DecodeError, external data raises OSError
        raise ModelLoadError(f"{path}: not a readable ONNX model ({first_line(exc)})") from exc
    return proto


def _check_model(path: Path, proto: onnx.ModelProto) -> None:
    try:
        onnx.checker.check_model(proto)
    except onnx.checker.ValidationError as exc:
        raise ModelLoadError(f"{path}: invalid ONNX model ({first_line(exc)})") from exc
    if not proto.graph.output:
        raise ModelLoadError(f"{path}: invalid ONNX model (the graph has no outputs)")


def _check_ops(path: Path, graph: onnx.GraphProto) -> None:
    from tvm.relax.frontend.onnx.onnx_frontend import _get_convert_map

    known = set(_get_convert_map()) | {"If", "Constant"}
    unsupported: dict[str, list[str]] = {}
    for node in graph.node:
        standard = node.domain in ("", "ai.onnx")
        if not standard or node.op_type not in known:
            op = node.op_type if standard else f"{node.domain}.{node.op_type}"
            unsupported.setdefault(op, []).append(node.name or node.output[0])
    if unsupported:
        listed = "; ".join(
            f"{op} (node {', '.join(names[:3])}{', ...' if len(names) > 3 else ''})"
            for op, names in sorted(unsupported.items())
        )
        raise UnsupportedOpError(f"{path}: unsupported ONNX operator(s): {listed}")


def _input_specs(
    path: Path, graph: onnx.GraphProto, shapes: dict[str, Sequence[int]]
) -> tuple[TensorSpec, ...]:
    initializers = {init.name for init in graph.initializer}
    real_inputs = [vi for vi in graph.input if vi.name not in initializers]
    unknown = sorted(set(shapes) - {vi.name for vi in real_inputs})
    if unknown:
        names = ", ".join(vi.name for vi in real_inputs)
        raise InputShapeError(
            f"{path}: --input-shapes names unknown input(s) {', '.join(unknown)}; "
            f"the model's inputs are: {names}"
        )
    specs = []
    for vi in real_inputs:
        tensor_type = vi.type.tensor_type
        dims = [d.dim_value if d.HasField("dim_value") else None for d in tensor_type.shape.dim]
        if vi.name in shapes:
            given = tuple(int(d) for d in shapes[vi.name])
            if tensor_type.HasField("shape") and len(given) != len(dims):
                raise InputShapeError(
                    f"{path}: input '{vi.name}' has rank {len(dims)}, "
                    f"--input-shapes gives {list(given)}"
                )
            if any(d <= 0 for d in given):
                raise InputShapeError(f"{path}: input '{vi.name}': shape {list(given)} must be > 0")
            dims = list(given)
        elif not tensor_type.HasField("shape") or any(d is None or d <= 0 for d in dims):
            shown = [d if d else "?" for d in dims] if tensor_type.HasField("shape") else "?"
            raise InputShapeError(
                f"{path}: input '{vi.name}' has dynamic shape {shown}; "
                f'give it with --input-shapes "{vi.name}:[...]"'
            )
        dtype = np.dtype(helper.tensor_dtype_to_np_dtype(tensor_type.elem_type)).name
        specs.append(TensorSpec(vi.name, tuple(dims), dtype))
    return tuple(specs)


def _split_weights(proto: onnx.ModelProto) -> onnx.ModelProto:
    """A copy of ``proto`` whose initializers are exactly its weights (see module docstring)."""
    model = onnx.ModelProto()
    model.CopyFrom(proto)
    graph = model.graph

    tensors = {init.name: init for init in graph.initializer}
    kept_nodes = []
    for node in graph.node:
        value = _constant_tensor(node)
        if value is None:
            kept_nodes.append(node)
        else:
            value.name = node.output[0]
            tensors[value.name] = value

    weight_names = set()
    for node in kept_nodes:
        if node.domain not in ("", "ai.onnx") or node.op_type not in WEIGHT_SLOTS:
            continue
        for slot in WEIGHT_SLOTS[node.op_type]:
            if slot >= len(node.input) or node.input[slot] not in tensors:
                continue
            tensor = tensors[node.input[slot]]
            if tensor.data_type not in _FLOAT_TYPES:
                continue
            if node.op_type in _ELEMENTWISE_SLOTS and int(np.prod(tensor.dims)) <= 1:
                continue
            weight_names.add(tensor.name)

    relax_names = [name.removeprefix("onnx::") for name in weight_names]
    if len(set(relax_names)) != len(relax_names):
        raise ModelLoadError("two weights have the same name once the 'onnx::' prefix is removed")

    constants = [
        helper.make_node("Constant", [], [name], value=tensor)
        for name, tensor in tensors.items()
        if name not in weight_names
    ]
    weights = [tensors[name] for name in tensors if name in weight_names]
    del graph.initializer[:]
    graph.initializer.extend(weights)
    real_inputs = [vi for vi in graph.input if vi.name not in tensors]
    del graph.input[:]
    graph.input.extend(real_inputs)
    del graph.node[:]
    graph.node.extend([*constants, *kept_nodes])
    return model


def _constant_tensor(node: onnx.NodeProto) -> onnx.TensorProto | None:
    if node.op_type != "Constant" or node.domain not in ("", "ai.onnx"):
        return None
    for attr in node.attribute:
        if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
            tensor = onnx.TensorProto()
            tensor.CopyFrom(attr.t)
            return tensor
    return None


def _import(path: Path, proto: onnx.ModelProto, inputs: tuple[TensorSpec, ...]) -> Model:
    from tvm.relax.frontend import detach_params
    from tvm.relax.frontend.onnx import from_onnx

    captured = io.StringIO()
    try:
        # The importer prints the failing op to stdout and warns about renamed inputs; both go
        # into the one-line error instead.
        with contextlib.redirect_stdout(captured), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mod = from_onnx(
                proto,
                shape_dict={spec.name: list(spec.shape) for spec in inputs},
                dtype_dict={spec.name: spec.dtype for spec in inputs},
                keep_params_in_input=True,
            )
    except Exception as exc:
        failing = [
            line.split("Error converting operator", 1)[1].split(",", 1)[0].strip()
            for line in captured.getvalue().splitlines()
            if "Error converting operator" in line
        ]
        where = f" at operator {failing[0]}" if failing else ""
        raise ModelLoadError(f"{path}: ONNX import failed{where}: {first_line(exc)}") from exc

    mod, detached = detach_params(FixUpsampleRounding()(mod))
    main = mod["main"]
    weight_vars = main.params[len(inputs) :]
    values = detached.get("main", [])
    params = {var.name: value.numpy() for var, value in zip(weight_vars, values, strict=True)}
    outputs = _output_specs(proto, main)
    return Model(mod=mod, params=params, inputs=inputs, outputs=outputs, source=str(path))


def _output_specs(proto: onnx.ModelProto, main) -> tuple[TensorSpec, ...]:
    from tvm import relax

    ret = main.ret_ty
    fields = list(ret.fields) if isinstance(ret, relax.TupleType) else [ret]
    names = [out.name for out in proto.graph.output]
    specs = []
    for name, ty in zip(names, fields, strict=True):
        if not isinstance(ty, relax.TensorType) or ty.shape is None:
            raise ModelLoadError(f"output '{name}' is not a tensor of known shape ({ty})")
        try:
            shape = tuple(int(d) for d in ty.shape)
        except TypeError as exc:
            raise ModelLoadError(f"output '{name}' has a dynamic shape {ty.shape}") from exc
        specs.append(TensorSpec(name, shape, str(ty.dtype)))
    return tuple(specs)
