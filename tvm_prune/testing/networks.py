"""CNN-shaped ONNX graphs with random weights: single operators and whole networks.

``single_op`` builds one operator (Conv, ConvTranspose, Gemm, MaxPool, ...) followed by an
optional activation, for per-rule numerics. ``resnet18_like`` and ``mobilenet_v2_like`` have the
layer shapes of those networks (batch-norm folded into conv bias, as exported for inference),
random He-initialised weights, and serve the benchmarks.
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

OPSET = 17


class _Graph:
    """Accumulates nodes and initializers; names are generated."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes: list[onnx.NodeProto] = []
        self.inits: list[onnx.TensorProto] = []
        self.count = 0

    def name(self, prefix: str) -> str:
        self.count += 1
        return f"{prefix}{self.count}"

    def weight(self, shape: tuple[int, ...], scale: float | None = None) -> str:
        fan_in = int(np.prod(shape[1:])) if len(shape) > 1 else 1
        scale = np.sqrt(2.0 / fan_in) if scale is None else scale
        name = self.name("w")
        value = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        self.inits.append(numpy_helper.from_array(value, name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x: str, cin: int, cout: int, k: int, *, stride=1, groups=1, act="Relu"):
        w = self.weight((cout, cin // groups, k, k))
        b = self.weight((cout,), scale=0.1)
        y = self.node("Conv", [x, w, b], pads=[k // 2] * 4, strides=[stride] * 2, group=groups)
        if act == "Relu":
            y = self.node("Relu", [y])
        elif act == "Clip6":
            y = self.node("Clip", [y, self.const(0.0), self.const(6.0)])
        return y

    def const(self, value: float) -> str:
        name = self.name("c")
        self.inits.append(numpy_helper.from_array(np.array(value, np.float32), name))
        return name

    def model(self, x_shape, out: str, out_shape, name: str) -> onnx.ModelProto:
        graph = helper.make_graph(
            self.nodes,
            name,
            [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x_shape))],
            [helper.make_tensor_value_info(out, TensorProto.FLOAT, out_shape)],
            self.inits,
        )
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)])
        return onnx.shape_inference.infer_shapes(model)


def single_op(
    op: str,
    x_shape: tuple[int, ...],
    *,
    weight: tuple[int, ...] | None = None,
    act: str | None = "Relu",
    residual: bool = False,
    seed: int = 0,
    **attrs,
) -> onnx.ModelProto:
    """``x -> op(x, w, b) -> act -> y``; ``weight`` None for weightless ops (pooling);
    ``residual`` adds ``x`` before the activation (an op keeping ``x``'s shape)."""
    g = _Graph(seed)
    inputs = ["x"]
    if weight is not None:
        inputs.append(g.weight(weight))
        channels = weight[1] if op == "ConvTranspose" else weight[0]
        if op == "ConvTranspose":
            channels *= attrs.get("group", 1)
        if op == "Gemm":
            channels = weight[1]
        inputs.append(g.weight((channels,), scale=0.1))
    y = g.node(op, inputs, **attrs)
    if residual:
        y = g.node("Add", [y, "x"])
    if act:
        y = g.node(act, [y])
    g.node("Identity", [y])  # a consumer, so shape inference gives y's shape
    model = g.model(x_shape, g.nodes[-1].output[0], None, f"single_{op.lower()}")
    out = next(vi for vi in model.graph.value_info if vi.name == y)
    del model.graph.node[-1]
    del model.graph.output[:]
    model.graph.output.append(out)
    return model


def resnet18_like(*, size: int = 224, seed: int = 0) -> onnx.ModelProto:
    """ResNet-18 layer shapes: 7x7/2 stem, max pool, 4 stages of 2 basic blocks, GAP, FC."""
    g = _Graph(seed)
    y = g.conv("x", 3, 64, 7, stride=2)
    y = g.node("MaxPool", [y], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    cin = 64
    for stage, cout in enumerate((64, 128, 256, 512)):
        for block in range(2):
            stride = 2 if stage > 0 and block == 0 else 1
            h = g.conv(y, cin, cout, 3, stride=stride)
            h = g.conv(h, cout, cout, 3, act=None)
            skip = (
                y
                if stride == 1 and cin == cout
                else g.conv(y, cin, cout, 1, stride=stride, act=None)
            )
            y = g.node("Relu", [g.node("Add", [h, skip])])
            cin = cout
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y])])
    y = g.node("Gemm", [y, g.weight((512, 1000)), g.weight((1000,), scale=0.1)])
    return g.model((1, 3, size, size), y, (1, 1000), "resnet18_like")


def mobilenet_v2_like(*, size: int = 224, seed: int = 0) -> onnx.ModelProto:
    """MobileNetV2 layer shapes: inverted residual blocks (1x1 expand, 3x3 depthwise, 1x1)."""
    g = _Graph(seed)
    y = g.conv("x", 3, 32, 3, stride=2, act="Clip6")
    cin = 32
    settings = [
        (1, 16, 1, 1),
        (6, 24, 2, 2),
        (6, 32, 3, 2),
        (6, 64, 4, 2),
        (6, 96, 3, 1),
        (6, 160, 3, 2),
        (6, 320, 1, 1),
    ]
    for expand, cout, repeats, first_stride in settings:
        for i in range(repeats):
            stride = first_stride if i == 0 else 1
            hidden = cin * expand
            h = g.conv(y, cin, hidden, 1, act="Clip6") if expand != 1 else y
            h = g.conv(h, hidden, hidden, 3, stride=stride, groups=hidden, act="Clip6")
            h = g.conv(h, hidden, cout, 1, act=None)
            y = g.node("Add", [h, y]) if stride == 1 and cin == cout else h
            cin = cout
    y = g.conv(y, cin, 1280, 1, act="Clip6")
    y = g.node("Flatten", [g.node("GlobalAveragePool", [y])])
    y = g.node("Gemm", [y, g.weight((1280, 1000)), g.weight((1000,), scale=0.1)])
    return g.model((1, 3, size, size), y, (1, 1000), "mobilenet_v2_like")
