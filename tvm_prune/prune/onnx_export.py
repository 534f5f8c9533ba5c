"""Write a model's (pruned) weights back into a copy of its source ONNX file.

Relax parameter names are the ONNX tensor names without the ``onnx::`` prefix (see
:mod:`tvm_prune.frontend.onnx`); each changed parameter replaces the initializer, or the
``Constant`` node output, of that name. Weight pruning leaves the graph unchanged.

A channel-pruned model (its last transform is ``RemoveChannels``, whose report keeps the plan)
is written structurally: :mod:`.onnx_channels` slices the initializers of the ONNX graph to the
kept channels and adds the removed channels' constant contributions, as ``RemoveChannels`` does
in Relax.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from ..errors import TvmPruneError
from ..model import Model
from ..package.archive import write_atomic


def export_onnx(model: Model, output: str | Path, *, only: Mapping[str, np.ndarray] | None = None):
    """Write ``model.source`` with the weights in ``only`` (default: every weight that differs
    from the source file) replaced; returns the path written."""
    source = Path(model.source)
    if not source.is_file():
        raise TvmPruneError(f"cannot export ONNX: the source model {source} is not a file")
    proto = onnx.load(str(source))
    wanted = dict(only if only is not None else model.params)
    replaced = set()

    def matches(name: str) -> str | None:
        key = name.removeprefix("onnx::")
        return key if key in wanted else None

    for init in proto.graph.initializer:
        key = matches(init.name)
        if key is not None:
            _replace(init, wanted[key])
            replaced.add(key)
    for node in proto.graph.node:
        if node.op_type != "Constant" or not node.output:
            continue
        key = matches(node.output[0])
        if key is None:
            continue
        for attr in node.attribute:
            if attr.name == "value" and attr.type == onnx.AttributeProto.TENSOR:
                _replace(attr.t, wanted[key])
                replaced.add(key)
    missing = sorted(set(wanted) - replaced)
    if only is not None and missing:
        raise TvmPruneError(f"cannot export ONNX: no tensor named {', '.join(missing[:3])}")
    plan = channel_plan(model)
    if plan:
        from .onnx_channels import remove_onnx_channels

        proto = remove_onnx_channels(proto, plan, {s.name: s.shape for s in model.inputs})
    output = Path(output)
    write_atomic(output, lambda handle: handle.write(proto.SerializeToString()))
    return output


def channel_plan(model: Model) -> dict[str, list[int]]:
    """The channels removed by the model's ``RemoveChannels`` transforms (empty if none)."""
    records = [r for r in model.transforms if r.name == "RemoveChannels"]
    if len(records) > 1:
        raise TvmPruneError("cannot export ONNX: channels were removed twice; prune once")
    return dict(records[0].report["plan"]) if records else {}


def _replace(tensor: onnx.TensorProto, value: np.ndarray) -> None:
    dtype = onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)
    new = numpy_helper.from_array(np.asarray(value, dtype=dtype).reshape(tuple(tensor.dims)))
    new.name = tensor.name
    tensor.CopyFrom(new)
