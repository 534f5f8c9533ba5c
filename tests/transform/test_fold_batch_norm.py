"""FoldBatchNormIntoConv: an inference BatchNormalization after a Conv goes into its weights,
compiled on the host and compared with ONNX Runtime (1e-5 relative: the scale is multiplied
into the weights once instead of into every output). Refusals keep the batch norm."""

from __future__ import annotations

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import tvm_prune
from tvm_prune.testing import models
from tvm_prune.testing.ort import relative_error, run_ort

REL_TOL = 1e-5
CHANNELS = 8
PAD = {"pads": [1, 1, 1, 1]}


def _bn_model(
    nodes: list, bn_input: str, *, in_channels: int = 4, weight_channels: int = 4, tail=None
):
    """``x [1, in_channels, 10, 10]`` -> ``nodes`` -> BatchNormalization of ``bn_input`` ->
    ``tail`` (default: Relu) -> ``y``. Initializers: conv weight ``w [8, weight_channels, 3,
    3]``, bias ``b``, and the batch norm's parameters (eps 1e-3, variances from 0.1 so the
    scale is far from 1)."""
    rng = np.random.default_rng(0)
    tensors = {
        "w": rng.standard_normal((CHANNELS, weight_channels, 3, 3)).astype(np.float32) * 0.3,
        "b": rng.standard_normal(CHANNELS).astype(np.float32),
        "gamma": rng.uniform(0.5, 1.5, CHANNELS).astype(np.float32),
        "beta": rng.standard_normal(CHANNELS).astype(np.float32),
        "mean": rng.standard_normal(CHANNELS).astype(np.float32),
        "var": rng.uniform(0.1, 2.0, CHANNELS).astype(np.float32),
    }
    bn = helper.make_node(
        "BatchNormalization", [bn_input, "gamma", "beta", "mean", "var"], ["bn"], epsilon=1e-3
    )
    graph = helper.make_graph(
        [*nodes, bn, *(tail or [helper.make_node("Relu", ["bn"], ["y"])])],
        "bn",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, in_channels, 10, 10])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, CHANNELS, 10, 10])],
        [numpy_helper.from_array(v, k) for k, v in tensors.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def _compile_and_compare(model, tmp_path, input_shape):
    path = models.save(model, tmp_path / "model.onnx")
    package = tvm_prune.compile(path, output=tmp_path / "model.tar", target="host")
    (report,) = [
        t["report"]["rewrites"]
        for t in package.metadata.transforms
        if t["name"] == "FoldBatchNormIntoConv"
    ]
    x = np.random.default_rng(1).standard_normal(input_shape).astype(np.float32)
    ours, reference = package.run({"x": x}), run_ort(path, {"x": x})
    for name, value in reference.items():
        assert relative_error(ours[name], value) <= REL_TOL, name
    return report


@pytest.mark.parametrize(
    ("nodes", "in_channels", "weight_channels", "bias"),
    [
        ([helper.make_node("Conv", ["x", "w", "b"], ["c"], **PAD)], 4, 4, True),
        ([helper.make_node("Conv", ["x", "w"], ["c"], **PAD)], 4, 4, False),
        # depthwise: one input channel per output channel
        ([helper.make_node("Conv", ["x", "w", "b"], ["c"], group=CHANNELS, **PAD)], 8, 1, True),
    ],
    ids=["bias", "no_bias", "depthwise"],
)
def test_folded_batch_norm_equals_ort(nodes, in_channels, weight_channels, bias, tmp_path):
    model = _bn_model(nodes, "c", in_channels=in_channels, weight_channels=weight_channels)
    report = _compile_and_compare(model, tmp_path, (1, in_channels, 10, 10))
    assert report == [{"op": "batch_norm", "rewritten": True, "channels": CHANNELS, "bias": bias}]


def test_every_conv_batch_norm_of_a_network_is_folded(tmp_path):
    """Two conv + batch norm pairs (one conv with a bias) inside residual and concat coupling."""
    report = _compile_and_compare(models.coupled_channels(), tmp_path, (1, 3, 12, 12))
    assert [entry["rewritten"] for entry in report] == [True, True]


@pytest.mark.parametrize(
    ("nodes", "bn_input", "reason"),
    [
        ([helper.make_node("Relu", ["x"], ["r"])], "r", "input is not a conv2d"),
        (
            [helper.make_node("Conv", ["x", "w"], ["c"], **PAD)],
            "c",
            "the conv's output has other readers",
        ),
    ],
    ids=["not_a_conv", "conv_read_twice"],
)
def test_batch_norm_left_alone_when_it_cannot_fold(nodes, bn_input, reason, tmp_path):
    in_channels = CHANNELS if bn_input == "r" else 4
    # The output adds the batch norm's input back: the conv's output has a second reader.
    tail = [helper.make_node("Add", ["bn", bn_input], ["y"])]
    model = _bn_model(nodes, bn_input, in_channels=in_channels, tail=tail)
    (entry,) = _compile_and_compare(model, tmp_path, (1, in_channels, 10, 10))
    assert entry["rewritten"] is False and entry["reason"].startswith(reason)
