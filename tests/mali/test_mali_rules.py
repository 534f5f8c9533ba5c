"""Mali schedule rules, one operator each, run on PoCL against ONNX Runtime.

Each case compiles a one-operator ONNX model (with bias and ReLU: the fused epilogue) for the
mali-g76 preset, checks that the expected Mali rule scheduled the operator's kernel (the report
would name a dlight rule otherwise), that outputs whose rows are whole float4s are stored with
``vstore4``, and that the kernels run on PoCL give ORT's result: max |ocl - ort| <= 1e-4 x
max |ort|.
"""

from __future__ import annotations

import pytest

from tvm_prune.frontend import load_onnx
from tvm_prune.testing import models, networks
from tvm_prune.testing.opencl import OpenCLRunner, compile_for_opencl
from tvm_prune.testing.ort import assert_outputs_close, random_inputs, run_ort

REL_TOL = 1e-4

CASES = {
    "conv3x3": ("Conv", (1, 8, 12, 12), (16, 8, 3, 3), {"pads": [1] * 4}, "mali.Conv2d"),
    "conv3x3_s2_w7": (
        "Conv",
        (1, 8, 13, 13),
        (12, 8, 3, 3),
        {"pads": [1] * 4, "strides": [2, 2]},
        "mali.Conv2d",
    ),
    "conv1x1": ("Conv", (1, 16, 8, 8), (24, 16, 1, 1), {}, "mali.Conv2d"),
    "depthwise": (
        "Conv",
        (1, 16, 10, 10),
        (16, 1, 3, 3),
        {"pads": [1] * 4, "group": 16},
        "mali.Conv2d",
    ),
    "grouped": ("Conv", (1, 8, 8, 8), (8, 2, 3, 3), {"pads": [1] * 4, "group": 4}, "mali.Conv2d"),
    "conv_transpose": (
        "ConvTranspose",
        (1, 8, 6, 6),
        (8, 4, 3, 3),
        {"strides": [2, 2], "pads": [1] * 4, "output_padding": [1, 1]},
        "mali.Conv2d",
    ),
    "dense": ("Gemm", (3, 40), (40, 24), {}, "mali.Dense"),
    "maxpool": (
        "MaxPool",
        (1, 8, 12, 12),
        None,
        {"kernel_shape": [3, 3], "strides": [2, 2]},
        "mali.Pool",
    ),
    "avgpool": (
        "AveragePool",
        (1, 8, 16, 16),
        None,
        {"kernel_shape": [2, 2], "strides": [2, 2]},
        "mali.Pool",
    ),
    "global_avgpool": ("GlobalAveragePool", (1, 8, 6, 6), None, {}, "mali.Pool"),
}


def _check_on_pocl(onnx_path, expected_rule: str, *, float4_stores: bool = True):
    model = load_onnx(onnx_path)
    report: dict = {}
    build = compile_for_opencl(model, "mali-g76", report=report)
    assert report["scheduled"].get(expected_rule, 0) >= 1, report
    inputs = random_inputs(model.inputs, seed=1)
    outputs = OpenCLRunner(build).run([inputs[spec.name] for spec in model.inputs])
    actual = {spec.name: out for spec, out in zip(model.outputs, outputs, strict=True)}
    assert_outputs_close(actual, run_ort(onnx_path, inputs), rel_tol=REL_TOL)
    if float4_stores and all(spec.shape[-1] % 4 == 0 for spec in model.outputs):
        assert "vstore4(" in build.source
    return report


@pytest.mark.parametrize("case", sorted(CASES))
def test_mali_rule_on_pocl_equals_ort(case, tmp_path):
    op, x_shape, weight, attrs, rule = CASES[case]
    path = models.save(networks.single_op(op, x_shape, weight=weight, **attrs), tmp_path / "m.onnx")
    _check_on_pocl(path, rule)


def test_upsampling_kernel_on_pocl_equals_ort(tmp_path):
    """Bilinear 2x Resize: lowered to the weight-free upsampling kernel, an injective kernel
    whose phase choice is unrolled (not float4: see ``mali.Elementwise``)."""
    model = models.resize((1, 4, 6, 8), (2, 2), mode="linear", coordinate_mode="half_pixel")
    path = models.save(model, tmp_path / "resize.onnx")
    report = _check_on_pocl(path, "mali.Elementwise", float4_stores=False)
    assert not any(name.startswith("dlight") for name in report["scheduled"]), report
