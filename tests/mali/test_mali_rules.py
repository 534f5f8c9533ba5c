"""Mali schedule rules, one operator each, run on PoCL against ONNX Runtime.

The operator cases (each with bias and ReLU: the fused epilogue) are independent branches of
one ONNX model, so one build and one OpenCL program cover them all (the test-time budget).
The model is compiled for the mali-g76 preset; every kernel must be scheduled by a Mali rule
(the report would name a dlight rule otherwise), rows that are whole float4s are stored with
``vstore4``, and each case's output run on PoCL must match ORT's: max |ocl - ort| <= 1e-4 x
max |ort|.
"""

from __future__ import annotations

import onnx
import pytest
from onnx import compose, helper

from tvm_prune.frontend import load_onnx
from tvm_prune.testing import models, networks
from tvm_prune.testing.opencl import OpenCLRunner, compile_for_opencl
from tvm_prune.testing.ort import random_inputs, relative_error, run_ort

REL_TOL = 1e-4

CASES = {
    "conv3x3": ("Conv", (1, 8, 12, 12), (16, 8, 3, 3), {"pads": [1] * 4}),
    "conv3x3_s2_w7": ("Conv", (1, 8, 13, 13), (12, 8, 3, 3), {"pads": [1] * 4, "strides": [2, 2]}),
    "conv1x1": ("Conv", (1, 16, 8, 8), (24, 16, 1, 1), {}),
    "depthwise": ("Conv", (1, 16, 10, 10), (16, 1, 3, 3), {"pads": [1] * 4, "group": 16}),
    "grouped": ("Conv", (1, 8, 8, 8), (8, 2, 3, 3), {"pads": [1] * 4, "group": 4}),
    "conv_transpose": (
        "ConvTranspose",
        (1, 8, 6, 6),
        (8, 4, 3, 3),
        {"strides": [2, 2], "pads": [1] * 4, "output_padding": [1, 1]},
    ),
    "dense": ("Gemm", (3, 40), (40, 24), {}),
    "maxpool": ("MaxPool", (1, 8, 12, 12), None, {"kernel_shape": [3, 3], "strides": [2, 2]}),
    "avgpool": ("AveragePool", (1, 8, 16, 16), None, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "global_avgpool": ("GlobalAveragePool", (1, 8, 6, 6), None, {}),
}
# Plus "upsample": bilinear 2x Resize, which becomes the weight-free upsampling kernel.


def _case_models() -> dict[str, onnx.ModelProto]:
    cases = {
        name: networks.single_op(op, x_shape, weight=weight, **attrs)
        for name, (op, x_shape, weight, attrs) in CASES.items()
    }
    cases["upsample"] = models.resize(
        (1, 4, 6, 8), (2, 2), mode="linear", coordinate_mode="half_pixel"
    )
    return cases


def _side_by_side(cases: dict[str, onnx.ModelProto]) -> onnx.ModelProto:
    """One model whose graph is every case's graph, names prefixed with the case name."""
    graphs = [compose.add_prefix(model, f"{name}__").graph for name, model in cases.items()]
    opset = max(m.opset_import[0].version for m in cases.values())
    graph = helper.make_graph(
        [node for g in graphs for node in g.node],
        "mali_rule_cases",
        [vi for g in graphs for vi in g.input],
        [vi for g in graphs for vi in g.output],
        [init for g in graphs for init in g.initializer],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.fixture(scope="module")
def mali_cases(tmp_path_factory):
    path = models.save(_side_by_side(_case_models()), tmp_path_factory.mktemp("mali") / "m.onnx")
    model = load_onnx(path)
    report: dict = {}
    build = compile_for_opencl(model, "mali-g76", report=report)
    inputs = random_inputs(model.inputs, seed=1)
    outputs = OpenCLRunner(build).run([inputs[spec.name] for spec in model.inputs])
    actual = {spec.name: out for spec, out in zip(model.outputs, outputs, strict=True)}
    return build, report, actual, run_ort(path, inputs)


def test_every_kernel_is_scheduled_by_a_mali_rule(mali_cases):
    _, report, _, _ = mali_cases
    assert report["scheduled"] and all(r.startswith("mali.") for r in report["scheduled"]), report
    for rule in ("mali.Conv2d", "mali.Dense", "mali.Pool", "mali.Elementwise"):
        assert report["scheduled"].get(rule, 0) >= 1, (rule, report)


def test_whole_float4_rows_are_stored_as_float4(mali_cases):
    """At least as many kernels store with ``vstore4`` as the model has outputs in rows of whole
    float4s (all but the upsampling kernel's, whose phase choice is unrolled): without float4
    stores, none would."""
    build, _, actual, _ = mali_cases
    kernels = build.source.split("__kernel void ")[1:]
    bodies = [k for k in kernels if "{" in k.split(")", 1)[1][:3]]
    float4_rows = [
        n for n in actual if not n.startswith("upsample__") and actual[n].shape[-1] % 4 == 0
    ]
    stored = [k for k in bodies if "vstore4(" in k]
    assert len(stored) >= len(float4_rows), (len(stored), float4_rows)


@pytest.mark.parametrize("case", [*sorted(CASES), "upsample"])
def test_mali_rule_on_pocl_equals_ort(mali_cases, case):
    _, _, actual, expected = mali_cases
    (name,) = [n for n in expected if n.startswith(f"{case}__")]
    error = relative_error(actual[name], expected[name])
    assert error <= REL_TOL, f"{case}: off by {error:.2e} of the output scale"
