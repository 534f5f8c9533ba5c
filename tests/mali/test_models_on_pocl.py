"""Whole models compiled for mali-g76 with the Mali rules, run on PoCL, equal to ORT (1e-4 of
the output's scale): the bundled digits CNN (also equal to the host LLVM build) and PP-OCRv4
det at 64x64."""

from __future__ import annotations

import pytest

import tvm_prune
from tvm_prune.testing import models
from tvm_prune.testing.opencl import OpenCLRunner, compile_for_opencl
from tvm_prune.testing.ort import assert_outputs_close, random_inputs, run_ort

from ..conftest import DIGITS

REL_TOL = 1e-4


def test_digits_cnn_on_pocl_equals_ort_and_the_host_build(digits_mali, tmp_path):
    model, build, report = digits_mali
    inputs = random_inputs(model.inputs, seed=5)
    outputs = OpenCLRunner(build).run([inputs[spec.name] for spec in model.inputs])
    actual = {spec.name: out for spec, out in zip(model.outputs, outputs, strict=True)}
    assert_outputs_close(actual, run_ort(DIGITS / "digits_cnn.onnx", inputs), rel_tol=REL_TOL)
    host = tvm_prune.compile(model, target="host", output=tmp_path / "host.tar")
    assert_outputs_close(actual, host.run(inputs), rel_tol=REL_TOL)
    # Every kernel of this CNN is one the Mali rules handle.
    assert all(name.startswith("mali.") for name in report["scheduled"]), report


@pytest.mark.slow
def test_ppocr_det_on_pocl_equals_ort():
    onnx_path = models.ppocr_det_model()
    model = tvm_prune.load_onnx(onnx_path, input_shapes={"x": (1, 3, 64, 64)})
    inputs = {"x": models.document_image(64, 64)}
    report: dict = {}
    build = compile_for_opencl(model, "mali-g76", report=report)
    (output,) = OpenCLRunner(build).run([inputs["x"]])
    actual = {model.outputs[0].name: output}
    assert_outputs_close(actual, run_ort(onnx_path, inputs), rel_tol=REL_TOL)
    assert report["scheduled"]["mali.Conv2d"] >= 30, report
