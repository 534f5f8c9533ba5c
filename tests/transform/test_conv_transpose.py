"""LowerConvTransposeToConv: non-overlapping ConvTransposes (bias + ReLU after them) compiled
with the host schedule rules equal ONNX Runtime; other ConvTransposes are left alone with a reason.

Tolerance: max |ours - ort| <= 1e-5 x max |ort| (the same C_in products are summed per output).
"""

from __future__ import annotations

import numpy as np
import pytest
import tvm
from tvm import relax

from tvm_prune.frontend import load_onnx
from tvm_prune.pipeline import build_pipeline
from tvm_prune.target import resolve_target
from tvm_prune.testing import models, networks
from tvm_prune.testing.ort import relative_error, run_ort
from tvm_prune.transform import LowerConvTransposeToConv

from ..conftest import relax_op_names

REL_TOL = 1e-5


def _lowered(tmp_path, x_shape, weight, **attrs):
    path = models.save(
        networks.single_op("ConvTranspose", x_shape, weight=weight, **attrs), tmp_path / "ct.onnx"
    )
    model = load_onnx(path)
    lower = LowerConvTransposeToConv()
    return path, model, lower(model.bound_module()), lower.report


@pytest.mark.parametrize(
    ("x_shape", "weight", "strides"),
    [
        ((1, 24, 10, 12), (24, 16, 2, 2), [2, 2]),  # the PP-OCR det head's upsampler
        ((2, 8, 5, 7), (8, 3, 3, 2), [3, 2]),  # batch 2, non-square phases, C_out < vector
    ],
)
def test_lowered_conv_transpose_matches_ort(tmp_path, x_shape, weight, strides):
    path, _, lowered, report = _lowered(tmp_path, x_shape, weight, strides=strides)
    assert report == [
        {
            "op": "conv2d_transpose",
            "shape": [
                list(x_shape),
                [x_shape[0], weight[1], x_shape[2] * strides[0], x_shape[3] * strides[1]],
            ],
            "kernel": list(weight[2:]),
            "strides": strides,
            "rewritten": True,
            "gemm": [weight[0], weight[1] * weight[2] * weight[3]],
        }
    ]
    assert "relax.nn.conv2d_transpose" not in relax_op_names(lowered)
    preset = resolve_target("host")
    schedule_report: dict = {}
    with preset.target:
        executable = tvm.compile(
            lowered,
            target=preset.target,
            relax_pipeline=build_pipeline(preset, report=schedule_report),
        )
    assert schedule_report["fallback"] == 0, schedule_report
    x = np.random.default_rng(1).standard_normal(x_shape).astype(np.float32)
    ours = relax.VirtualMachine(executable, tvm.cpu())["main"](tvm.runtime.tensor(x)).numpy()
    (reference,) = run_ort(path, {"x": x}).values()
    assert relative_error(ours, reference) <= REL_TOL


@pytest.mark.parametrize(
    ("weight", "attrs", "reason"),
    [
        ((4, 4, 4, 4), {"strides": [2, 2], "pads": [1] * 4}, "overlapping"),
        ((4, 2, 2, 2), {"strides": [2, 2], "group": 2}, "groups 2"),
        ((4, 4, 2, 2), {"strides": [2, 2], "output_padding": [1, 1]}, "output padding"),
    ],
)
def test_other_conv_transposes_are_left_alone(tmp_path, weight, attrs, reason):
    _, model, lowered, report = _lowered(tmp_path, (1, 4, 5, 5), weight, **attrs)
    tvm.ir.assert_structural_equal(lowered, model.bound_module())
    assert report[0]["rewritten"] is False and reason in report[0]["reason"], report


def test_lowered_conv_transpose_builds_for_aarch64(tmp_path):
    _, _, lowered, _ = _lowered(tmp_path, (1, 24, 10, 12), (24, 16, 2, 2), strides=[2, 2])
    preset = resolve_target("aarch64-linux")
    schedule_report: dict = {}
    with preset.target:
        tvm.compile(
            lowered,
            target=preset.target,
            relax_pipeline=build_pipeline(preset, report=schedule_report),
        )
    assert schedule_report["scheduled"].get("Conv2d") == 1, schedule_report
    assert schedule_report["fallback"] == 0, schedule_report
