"""The OpenCL runner: a Mali build of the digits CNN run on PoCL equals ONNX Runtime, and a wrong
launch is caught; the GPU pipeline's guard against dlight's Android = Adreno assumption."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import tvm
from tvm import te
from tvm.s_tir import dlight as dl

import tvm_prune
from tvm_prune.errors import TargetError
from tvm_prune.schedule.rules import DeviceTargetOnly
from tvm_prune.target.presets import load_preset
from tvm_prune.testing.opencl import OpenCLRunner, compile_for_opencl
from tvm_prune.testing.ort import assert_outputs_close, random_inputs, relative_error, run_ort

from ..conftest import DIGITS

DIGITS_ONNX = DIGITS / "digits_cnn.onnx"


@pytest.fixture(scope="module")
def digits_generic():
    """The digits CNN for mali-g76 with dlight's generic GPU rules only, and one input."""
    model = tvm_prune.load_onnx(DIGITS_ONNX)
    build = compile_for_opencl(model, "mali-g76", rules=())
    inputs = random_inputs(model.inputs, seed=3)
    expected = run_ort(DIGITS_ONNX, inputs)
    return model, build, inputs, expected


def test_digits_generic_gpu_build_on_pocl_equals_ort(digits_generic):
    model, build, inputs, expected = digits_generic
    outputs = OpenCLRunner(build).run([inputs[spec.name] for spec in model.inputs])
    actual = {spec.name: out for spec, out in zip(model.outputs, outputs, strict=True)}
    assert_outputs_close(actual, expected, rel_tol=1e-4)
    assert "__kernel void" in build.source


def test_halved_launch_is_caught(digits_generic):
    """Negative control: the first kernel run with half its work-groups along x leaves
    elements unwritten (NaN-filled), so the output no longer matches."""
    model, build, inputs, expected = digits_generic
    first_call = next(b.value for b in build.main.body.blocks[0].bindings if b.value.args)
    launch = build.launches[first_call.args[0].name_hint][0]
    blocks = launch.global_size[0] // launch.local_size[0]
    assert blocks >= 2, launch
    wrong = build.with_launch(
        launch.kernel,
        lambda k: dataclasses.replace(
            k, global_size=((blocks // 2) * k.local_size[0], *k.global_size[1:])
        ),
    )
    (output,) = OpenCLRunner(wrong).run([inputs[spec.name] for spec in model.inputs])
    (reference,) = expected.values()
    error = relative_error(output, reference)
    assert np.isnan(error) or error > 1e-2, error


def test_compile_for_opencl_refuses_a_cpu_target():
    with pytest.raises(TargetError, match="host is not an OpenCL target"):
        compile_for_opencl(tvm_prune.load_onnx(DIGITS_ONNX), "host")


def test_dlight_rules_see_a_mali_target_without_its_android_host():
    """dlight's Matmul gives an OpenCL target with an "android" host Adreno tiles; behind
    ``DeviceTargetOnly`` an Android and a Linux Mali get the same schedule."""
    a = te.placeholder((256, 256), "float32", name="a")
    b = te.placeholder((256, 256), "float32", name="b")
    k = te.reduce_axis((0, 256), name="k")
    c = te.compute((256, 256), lambda i, j: te.sum(a[i, k] * b[k, j], axis=k), name="c")
    func = te.create_prim_func([a, b, c])
    device = dict(load_preset("mali-g76").target.export())
    device.pop("host")

    def scheduled(rule, host_triple):
        target = tvm.target.Target(device, host={"kind": "llvm", "mtriple": host_triple})
        with target:
            return rule.apply(func, target, False).mod.script()

    raw, wrapped = dl.gpu.Matmul(), DeviceTargetOnly(dl.gpu.Matmul())
    linux, android = "aarch64-linux-gnu", "aarch64-linux-android"
    assert scheduled(raw, linux) != scheduled(raw, android)
    assert scheduled(wrapped, linux) == scheduled(wrapped, android)
