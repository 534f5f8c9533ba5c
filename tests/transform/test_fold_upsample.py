"""FoldUpsampleIntoConv: a nearest Resize read only by a Conv becomes one conv per output phase,
compiled on the host and compared with ONNX Runtime (1e-5 relative: only the summation order of
the taps summed into one changes). Refusals leave the Resize to LowerUpsampling."""

from __future__ import annotations

import numpy as np
import pytest

import tvm_prune
from tvm_prune.testing import models
from tvm_prune.testing.ort import relative_error, run_ort
from tvm_prune.transform import FoldUpsampleIntoConv

REL_TOL = 1e-5


def _compile(model, tmp_path):
    path = models.save(model, tmp_path / "model.onnx")
    package = tvm_prune.compile(path, output=tmp_path / "model.tar", target="host")
    (report,) = [
        t["report"]["rewrites"]
        for t in package.metadata.transforms
        if t["name"] == "FoldUpsampleIntoConv"
    ]
    x = np.random.default_rng(1).standard_normal(_input_shape(model)).astype(np.float32)
    ours, reference = package.run({"x": x}), run_ort(path, {"x": x})
    for name, value in reference.items():
        assert relative_error(ours[name], value) <= REL_TOL, name
    return report


def _input_shape(model):
    return [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]


@pytest.mark.parametrize(
    ("scales", "kernel", "pads", "group", "nearest", "phase_kernels"),
    [
        ((2, 2), (3, 3), (1, 1, 1, 1), 1, ("asymmetric", "floor"), [[2, 2], [2, 2]]),
        (
            (3, 2),
            (5, 5),
            (2, 2, 2, 2),
            1,
            ("half_pixel", "round_prefer_floor"),
            [[2, 3, 2], [3, 3]],
        ),
        ((2, 2), (1, 1), (0, 0, 0, 0), 1, ("asymmetric", "floor"), [[1, 1], [1, 1]]),
        ((2, 2), (2, 2), (0, 0, 1, 1), 1, ("asymmetric", "floor"), [[1, 2], [1, 2]]),
        ((4, 4), (3, 3), (1, 1, 1, 1), 8, ("asymmetric", "floor"), [[2, 1, 1, 2], [2, 1, 1, 2]]),
    ],
)
def test_folded_conv_equals_ort(scales, kernel, pads, group, nearest, phase_kernels, tmp_path):
    model = models.resize_conv(
        (1, 8, 7, 9),
        scales,
        16,
        kernel=kernel,
        pads=pads,
        group=group,
        coordinate_mode=nearest[0],
        nearest_mode=nearest[1],
    )
    (entry,) = _compile(model, tmp_path)
    assert entry["rewritten"] is True, entry
    assert entry["phase_kernels"] == phase_kernels


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"mode": "linear", "coordinate_mode": "half_pixel"}, "not a plain pixel repeat"),
        ({"strides": (2, 2)}, "stride"),
        ({"pads": (0, 0, 0, 0)}, "padding changes the size"),
        ({"second_reader": True}, "other readers"),
    ],
)
def test_refusals_are_reported_and_still_equal_ort(change, reason, tmp_path):
    (entry,) = _compile(models.resize_conv((1, 4, 6, 6), (2, 2), 4, **change), tmp_path)
    assert entry["rewritten"] is False and reason in entry["reason"], entry


def test_convs_without_a_resize_are_not_reported(tmp_path):
    path = models.save(models.conv_bn_relu(), tmp_path / "conv.onnx")
    fold = FoldUpsampleIntoConv()
    fold(tvm_prune.load_onnx(path).bound_module())
    assert fold.report == []
