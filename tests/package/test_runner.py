"""Running a package: outputs equal ONNX Runtime; bad inputs and foreign packages refused."""

from __future__ import annotations

import numpy as np
import pytest

import tvm_prune
from tvm_prune.errors import RunError
from tvm_prune.testing.ort import assert_outputs_close, run_ort


def test_run_matches_onnxruntime(matmul_package, matmul_model):
    x = np.random.default_rng(1).standard_normal((1, 64)).astype(np.float32)
    outputs = tvm_prune.Package.load(matmul_package.path).run({"x": x})
    # One 64-term float32 dot product per output, summed in another order than ORT's.
    assert_outputs_close(outputs, run_ort(matmul_model, {"x": x}), rel_tol=1e-5)


def test_benchmark_statistics(matmul_package):
    runner = matmul_package.runner()
    result = runner.benchmark({"x": np.zeros((1, 64), np.float32)}, repeat=3, number=2)
    # A field filled from the wrong statistic breaks the ordering.
    assert 0 < result.min_ms <= result.median_ms <= result.max_ms
    assert result.min_ms <= result.mean_ms <= result.max_ms


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ({}, "missing input\\(s\\) x; the model's inputs are: x"),
        ({"x": np.zeros((1, 64), np.float32), "z": np.zeros(1)}, "unknown input\\(s\\) z"),
        (
            {"x": np.zeros((2, 64), np.float32)},
            r"input 'x': shape \[2, 64\] given, \[1, 64\] expected",
        ),
        ({"x": np.zeros((1, 64), np.float64)}, "input 'x': dtype float64 given, float32 expected"),
    ],
)
def test_bad_inputs(matmul_package, inputs, message):
    with pytest.raises(RunError, match=message):
        matmul_package.run(inputs)


def test_foreign_architecture_is_refused(matmul_model, tmp_path):
    """An aarch64 package compiles here but cannot run on this x86 host."""
    import platform
    import shutil

    if platform.machine() == "aarch64":
        pytest.skip("this host is aarch64: the package would run")
    if shutil.which("aarch64-linux-gnu-g++") is None:
        pytest.fail("aarch64-linux-gnu-g++ missing: the test set-up installs g++-aarch64-linux-gnu")
    package = tvm_prune.compile(matmul_model, target="aarch64-linux", output=tmp_path / "a.tar")
    with pytest.raises(RunError, match="built for aarch64-linux-gnu .*cannot run on this x86_64"):
        package.run({"x": np.zeros((1, 64), np.float32)})
