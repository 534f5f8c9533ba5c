"""The OpenCL runner: TVM's generic GPU schedules run on PoCL equal ONNX Runtime, a wrong launch
is caught; the GPU pipeline's guard against dlight's Android = Adreno assumption."""

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
from tvm_prune.testing import models, networks
from tvm_prune.testing.opencl import OpenCLRunner, compile_for_opencl
from tvm_prune.testing.ort import assert_outputs_close, random_inputs, relative_error, run_ort

from ..conftest import DIGITS


def test_generic_gpu_build_on_pocl_equals_ort(tmp_path):
    """dlight's rules only (``rules=()``: TVM's gpu_generic schedules) on conv + bias + ReLU."""
    onnx_model = networks.single_op("Conv", (1, 4, 9, 9), weight=(8, 4, 3, 3), pads=[1] * 4)
    path = models.save(onnx_model, tmp_path / "conv.onnx")
    model = tvm_prune.load_onnx(path)
    report: dict = {}
    build = compile_for_opencl(model, "mali-g76", rules=(), report=report)
    assert all(rule.startswith("dlight.") for rule in report["scheduled"]), report
    inputs = random_inputs(model.inputs, seed=3)
    (output,) = OpenCLRunner(build).run([inputs["x"]])
    # PoCL's float32 (contracted multiply-adds, another summation order) against ORT's.
    assert_outputs_close({model.outputs[0].name: output}, run_ort(path, inputs), rel_tol=1e-4)


def test_halved_launch_is_caught(digits_mali):
    """Negative control: the first kernel with several work-groups along x, run with half of
    them, leaves elements unwritten (NaN-filled), so the output no longer matches ORT."""
    model, build, _ = digits_mali
    inputs = random_inputs(model.inputs, seed=3)
    (reference,) = run_ort(DIGITS / "digits_cnn.onnx", inputs).values()
    launch = next(
        k
        for b in build.main.body.blocks[0].bindings
        if b.value.args and b.value.args[0].name_hint in build.launches
        for k in build.launches[b.value.args[0].name_hint]
        if k.global_size[0] // k.local_size[0] >= 2
    )
    blocks = launch.global_size[0] // launch.local_size[0]
    wrong = build.with_launch(
        launch.kernel,
        lambda k: dataclasses.replace(
            k, global_size=((blocks // 2) * k.local_size[0], *k.global_size[1:])
        ),
    )
    (right,) = OpenCLRunner(build).run([inputs[spec.name] for spec in model.inputs])
    (output,) = OpenCLRunner(wrong).run([inputs[spec.name] for spec in model.inputs])
    # PoCL's float32 (contracted multiply-adds, another summation order) against ORT's.
    assert relative_error(right, reference) <= 1e-4
    error = relative_error(output, reference)
    assert np.isnan(error) or error > 1e-2, error


def test_compile_for_opencl_refuses_a_cpu_target():
    with pytest.raises(TargetError, match="host is not an OpenCL target"):
        compile_for_opencl(tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx"), "host")


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
