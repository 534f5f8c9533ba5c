"""``tvm-prune bundle``: the C++ runner runs the model library without Python, with the same
outputs as the package (same library and runtime: bit-exact); refusals are one-line errors and
leave nothing behind. The aarch64 bundle under qemu is in tests/rpc/test_rpc.py."""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path

import numpy as np
import pytest

import tvm_prune
from tvm_prune.cli.main import main
from tvm_prune.errors import CompileError, PackageError
from tvm_prune.package.bundle import bundle_architecture, write_bundle

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


@pytest.fixture(scope="module")
def digits_host(tmp_path_factory):
    out = tmp_path_factory.mktemp("digits") / "digits.tar"
    return tvm_prune.compile(DIGITS / "digits_cnn.onnx", target="host", output=out)


@pytest.fixture(scope="module")
def host_bundle(digits_host, tmp_path_factory):
    bundle = tmp_path_factory.mktemp("bundle") / "bundle"
    assert main(["bundle", str(digits_host.path), "-o", str(bundle)]) == 0
    return bundle


def test_host_bundle_runs_without_python(digits_host, host_bundle, tmp_path):
    bundle = host_bundle
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert set(manifest["files"]) == {
        "mod.so",
        "libtvm_runtime.so",
        "libtvm_ffi.so",
        "tvm_prune_run",
    }
    assert [spec["name"] for spec in manifest["inputs"]] == ["input"]
    with np.load(DIGITS / "digits_test.npz") as data:
        images = data["input"][:3]
    for i, image in enumerate(images):
        np.save(tmp_path / "input.npy", image[None])
        result = subprocess.run(
            ["./tvm_prune_run", "mod.so", str(tmp_path / "input.npy"), "--out", str(tmp_path)]
            + ["--repeat", "2"] * (i == 0),
            cwd=bundle,
            capture_output=True,
            text=True,
            env={},  # no LD_LIBRARY_PATH, no Python: the rpath finds the runtime
        )
        assert result.returncode == 0, result.stderr
        assert "output 0: shape [1, 10]" in result.stdout
        expected = digits_host.run({"input": image[None]})["logits"]
        np.testing.assert_array_equal(np.load(tmp_path / "output_0.npy"), expected)
        if i == 0:
            assert "time_ms mean=" in result.stdout


def test_runner_reports_bad_inputs_in_one_line(host_bundle, tmp_path):
    np.save(tmp_path / "wrong.npy", np.zeros((2, 2), np.float64))
    runs = {
        "missing": [],
        "not npy": [str(DIGITS / "digits_cnn.onnx")],
        "two inputs": [str(tmp_path / "wrong.npy")] * 2,
    }
    for case, args in runs.items():
        result = subprocess.run(
            ["./tvm_prune_run", "mod.so", *args],
            cwd=host_bundle,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 1, case
        assert len(result.stderr.strip().splitlines()) == 1, (case, result.stderr)
        assert result.stderr.startswith("tvm_prune_run: error: ")


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"host_triple": "aarch64-linux-android"}, "Android needs a TVM runtime built"),
        ({"target": {"kind": "opencl", "device": "mali"}}, "bundles are for CPU targets"),
        ({"host_triple": "riscv64-linux-gnu"}, "no TVM runtime wheel for riscv64"),
    ],
)
def test_unsupported_devices_are_refused(digits_host, change, message):
    package = dataclasses.replace(
        digits_host, metadata=dataclasses.replace(digits_host.metadata, **change)
    )
    with pytest.raises(PackageError, match=message):
        bundle_architecture(package)


def test_failures_leave_nothing_behind(digits_host, tmp_path, capsys):
    bundle = tmp_path / "bundle"
    with pytest.raises(CompileError, match="'no-such-g\\+\\+' is not on PATH"):
        write_bundle(digits_host, bundle, cxx="no-such-g++")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("")
    args = ["bundle", str(digits_host.path), "-o", str(tmp_path / "full")]
    assert main(args) == 2
    assert "already exists and is not an empty folder" in capsys.readouterr().err
    assert main([*args[:2], "-o", str(bundle), "--target", "aarch64-linux"]) == 2
    assert "was compiled for host, not aarch64-linux" in capsys.readouterr().err
    assert not bundle.exists()
