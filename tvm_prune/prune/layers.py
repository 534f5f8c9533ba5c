"""Find the prunable layers of a :class:`Model` and their effective (BN-folded) weights.

A *prunable layer* is a ``conv2d``, ``conv2d_transpose`` or ``matmul`` in ``main`` whose weight
is a parameter of ``main`` listed in ``Model.params`` (for ``matmul`` possibly through one
``permute_dims``, as the ONNX importer writes ``Gemm``). Next to the weight we record the bias
parameter added right after the layer and the ``batch_norm`` that reads the layer's output, if
any: exporters often keep batch norm separate, and magnitudes are only comparable once its scale
is folded in (:func:`effective_weight`). The module is only read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from tvm import relax

from .depgraph import flat_args, op_name, producer_weight


@dataclass(frozen=True)
class BatchNormParams:
    """Parameter names of a ``batch_norm`` that reads a layer's output."""

    gamma: str | None
    beta: str | None
    mean: str
    var: str
    epsilon: float
    scale: bool


@dataclass(frozen=True)
class PrunableLayer:
    """One layer whose weight parameter can be pruned.

    Attributes
    ----------
    weight : str
        The weight's name in ``Model.params`` (also the layer's name in reports).
    op : str
        ``conv2d``, ``conv2d_transpose`` or ``matmul``.
    out_axis : int
        Axis of the weight *as stored* that indexes output channels (OIHW: 0, IOHW: 1,
        matmul's ``[in, out]``: 1, Gemm's ``[out, in]`` stored before ``permute_dims``: 0).
    input_var : relax.Var
        The layer's data input (for activation statistics).
    bias : str or None
        A bias parameter added to the output, with one value per output channel.
    batch_norm : BatchNormParams or None
        The inference batch norm applied to the (biased) output.
    macs_per_weight : int
        Multiply-accumulates each weight element costs per inference (output pixels).
    conv_geometry : tuple, optional
        ``conv2d`` only: strides, padding (top, left, bottom, right), dilation, output (H, W).
    """

    weight: str
    op: str
    out_axis: int
    input_var: relax.Var
    bias: str | None
    batch_norm: BatchNormParams | None
    macs_per_weight: int
    conv_geometry: (
        tuple[tuple[int, ...], tuple[int, ...], tuple[int, ...], tuple[int, int]] | None
    ) = None


def find_layers(mod, params: Mapping[str, np.ndarray]) -> tuple[PrunableLayer, ...]:
    """The prunable layers of ``mod["main"]`` in program order."""
    main = mod["main"]
    param_vars = {var: var.name for var in main.params if var.name in params}
    bindings = [b for block in main.body.blocks for b in block.bindings]
    value_of = {b.var: b.value for b in bindings}
    users: dict[relax.Var, list[relax.Binding]] = {}
    for binding in bindings:
        for arg in flat_args(binding.value):
            users.setdefault(arg, []).append(binding)

    layers = []
    for binding in bindings:
        call = binding.value
        found = producer_weight(call, value_of, param_vars, grouped=True)
        if found is None or params[found[0]].ndim < 2:
            continue
        name, out_axis = found
        op = op_name(call)
        out_shape = [int(d) for d in binding.var.ty.shape]
        out_channel_axis = 1 if op != "relax.matmul" else len(out_shape) - 1
        pixels = int(np.prod(out_shape)) // max(out_shape[out_channel_axis], 1)
        bias, output = _bias_after(binding.var, users, value_of, param_vars, params)
        layers.append(
            PrunableLayer(
                weight=name,
                op=op.removeprefix("relax.").removeprefix("nn."),
                out_axis=out_axis,
                input_var=call.args[0],
                bias=bias,
                batch_norm=_batch_norm_after(output, users, param_vars),
                macs_per_weight=pixels,
                conv_geometry=_conv_geometry(call, out_shape) if op == "relax.nn.conv2d" else None,
            )
        )
    return tuple(layers)


def effective_weight(layer: PrunableLayer, params: Mapping[str, np.ndarray]) -> np.ndarray:
    """The weight with the following batch norm's per-channel scale folded in.

    Used to judge magnitudes only; the stored weight is never replaced by it.
    """
    weight = np.asarray(params[layer.weight], dtype=np.float64)
    bn = layer.batch_norm
    if bn is None:
        return weight
    scale = 1.0 / np.sqrt(np.asarray(params[bn.var], dtype=np.float64) + bn.epsilon)
    if bn.scale and bn.gamma is not None:
        scale = scale * np.asarray(params[bn.gamma], dtype=np.float64)
    shape = [1] * weight.ndim
    shape[layer.out_axis] = -1
    return weight * scale.reshape(shape)


def _conv_geometry(call, out_shape):
    attrs = call.attrs
    if str(attrs.data_layout) != "NCHW" or str(attrs.kernel_layout) != "OIHW":
        return None
    padding = [int(p) for p in attrs.padding]
    if len(padding) == 2:
        padding = padding * 2
    return (
        tuple(int(s) for s in attrs.strides),
        tuple(padding),
        tuple(int(d) for d in attrs.dilation),
        (out_shape[2], out_shape[3]),
    )


def _bias_after(var, users, value_of, param_vars, params):
    """The per-channel bias parameter added to ``var`` (directly or reshaped), and the sum."""
    channel_axis = 1 if len(var.ty.shape) == 4 else len(var.ty.shape) - 1
    out_channels = int(var.ty.shape[channel_axis])
    for user in users.get(var, []):
        if op_name(user.value) != "relax.add":
            continue
        other = [a for a in user.value.args if not a.same_as(var)]
        if len(other) != 1:
            continue
        candidate = other[0]
        if candidate not in param_vars and op_name(value_of.get(candidate)) == "relax.reshape":
            candidate = value_of[candidate].args[0]
        name = param_vars.get(candidate)
        if name is not None and params[name].size == out_channels:
            return name, user.var
    return None, var


def _batch_norm_after(var, users, param_vars):
    for user in users.get(var, []):
        if op_name(user.value) != "relax.nn.batch_norm":
            continue
        args, attrs = user.value.args, user.value.attrs
        if int(attrs.axis) != 1:
            continue
        names = [param_vars.get(a) for a in args[1:5]]
        if names[2] is None or names[3] is None:
            continue
        return BatchNormParams(
            gamma=names[0],
            beta=names[1],
            mean=names[2],
            var=names[3],
            epsilon=float(attrs.epsilon),
            scale=bool(attrs.scale),
        )
    return None
