"""``build_pipeline`` inside ``compile``: the rules' report in the package, whole models vs ORT,
the aarch64 preset cross-compiled with the same rule family.

Tolerance: max |tvm - ort| <= 1e-4 x max |ort| per output.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.testing import models
from tvm_prune.testing.ort import assert_outputs_close, random_inputs, run_ort

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
ELF_MACHINE_AARCH64 = 183


def test_digits_cnn_every_kernel_scheduled_and_matches_ort(tmp_path):
    model = DIGITS / "digits_cnn.onnx"
    package = tvm_prune.compile(model, target="host", output=tmp_path / "d.tar")
    report = tvm_prune.Package.load(package.path).metadata.compile["schedule"]
    assert report["fallback"] == 0, report
    assert report["scheduled"]["Conv2d"] >= 2 and report["scheduled"]["Matmul"] >= 1
    with np.load(DIGITS / "digits_test.npz") as data:
        digits = data["input"][:1]
    assert_outputs_close(
        package.run({"input": digits}), run_ort(model, {"input": digits}), rel_tol=1e-4
    )


def test_light_squeezenet_matches_ort(tmp_path):
    path = models.save(models.randomized_light_model("light_squeezenet"), tmp_path / "sq.onnx")
    package = tvm_prune.compile(path, target="host", output=tmp_path / "sq.tar")
    assert package.metadata.compile["schedule"]["fallback"] == 0
    inputs = random_inputs(package.inputs)
    assert_outputs_close(package.run(inputs), run_ort(path, inputs), rel_tol=1e-4)


def test_without_rules_every_kernel_is_left_to_tvm(conv_model, tmp_path):
    package = tvm_prune.compile(
        conv_model, target="host", output=tmp_path / "c.tar", schedule_rules=False
    )
    report = package.metadata.compile["schedule"]
    assert report["scheduled"] == {} and report["fallback"] is None


def test_aarch64_preset_builds_with_the_cpu_rules(tmp_path):
    package = tvm_prune.compile(
        DIGITS / "digits_cnn.onnx", target="aarch64-linux", output=tmp_path / "a.tar"
    )
    report = package.metadata.compile["schedule"]
    assert report["fallback"] == 0 and report["scheduled"]["Conv2d"] >= 2
    library = package.members["mod.so"]
    assert library[:4] == b"\x7fELF"
    assert int.from_bytes(library[18:20], "little") == ELF_MACHINE_AARCH64
