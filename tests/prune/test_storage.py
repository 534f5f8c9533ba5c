"""Pruned weights cost less in a package: the storage report and the package bytes agree, and
the loaded package computes what ONNX Runtime does on the pruned ONNX."""

from __future__ import annotations

import dataclasses
import zlib

import numpy as np

import tvm_prune
from tvm_prune.prune.onnx_export import export_onnx
from tvm_prune.prune.storage import compressed_bytes, storage_report
from tvm_prune.testing.models import conv_bn_relu, save
from tvm_prune.testing.ort import relative_error, run_ort


def test_report_measures_deflate_of_the_weights():
    rng = np.random.default_rng(0)
    dense = {"a": rng.standard_normal((64, 32, 3, 3)).astype(np.float32)}
    pruned = {"a": np.where(np.abs(dense["a"]) < 1.04, 0, dense["a"]).astype(np.float32)}
    assert abs(np.mean(pruned["a"] == 0) - 0.7) < 0.02
    report = storage_report(dense, pruned)
    assert report["raw_bytes"] == dense["a"].nbytes
    assert report["dense_compressed_bytes"] == len(zlib.compress(dense["a"].tobytes(), 6))
    # 70 % zeros: the kept 30 % of float32 values plus about one bit per element of position.
    assert 0.30 < report["pruned_compressed_bytes"] / report["raw_bytes"] < 0.40
    assert report["dense_compressed_bytes"] / report["raw_bytes"] > 0.85
    assert compressed_bytes({}) == len(zlib.compress(b"", 6))


def test_pruned_package_is_smaller_and_loads_exactly(tmp_path):
    model = tvm_prune.load_onnx(save(conv_bn_relu(channels=16, size=32), tmp_path / "m.onnx"))
    pruned_params = {
        name: np.where(np.abs(w) < np.quantile(np.abs(w), 0.7), 0, w).astype(w.dtype)
        if w.ndim >= 2
        else w
        for name, w in ((name, np.asarray(value)) for name, value in model.params.items())
    }
    pruned = dataclasses.replace(model, params=pruned_params)
    dense_pkg = tvm_prune.compile(model, target="host", output=tmp_path / "dense.tar")
    pruned_pkg = tvm_prune.compile(pruned, target="host", output=tmp_path / "pruned.tar")
    dense_size = (tmp_path / "dense.tar").stat().st_size
    pruned_size = (tmp_path / "pruned.tar").stat().st_size
    assert pruned_size < 0.6 * dense_size, (pruned_size, dense_size)
    x = np.random.default_rng(1).standard_normal(model.inputs[0].shape).astype(np.float32)
    loaded = tvm_prune.Package.load(tmp_path / "pruned.tar")
    (name,) = [spec.name for spec in model.inputs]
    reference = run_ort(export_onnx(pruned, tmp_path / "pruned.onnx"), {name: x})["y"]
    # Folding the batch norm into the conv reorders float32 operations: 1e-5 of the scale.
    assert relative_error(loaded.run({name: x})["y"], reference) <= 1e-5
    assert dense_pkg.metadata.files != pruned_pkg.metadata.files
