"""prune_model end to end: compiled package == ONNX Runtime on the exported masked ONNX."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import tvm_prune
from tvm_prune.prune.api import PruneError, prune_model
from tvm_prune.prune.data import load_calibration
from tvm_prune.prune.onnx_export import export_onnx
from tvm_prune.testing.ort import OrtReference, assert_outputs_close

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def test_pruned_package_equals_ort_on_exported_onnx(tmp_path):
    model = tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx")
    data = load_calibration(DIGITS / "digits_calib.npz", model).subset(16)
    pruned, plan = prune_model(model, method="layerwise", sparsity=0.6, data=data)
    assert plan.sparsity == pytest.approx(0.6, abs=1e-3)
    assert pruned.transforms[-1].name == "PruneWeights"
    assert model.params["stem.0.bias"] is not pruned.params["stem.0.bias"]  # bias corrected

    exported = export_onnx(pruned, tmp_path / "pruned.onnx")
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(exported).graph.initializer}
    for layer in plan.layers:
        zeros = int(np.sum(weights[layer.weight] == 0))
        assert zeros >= layer.pruned
    package = tvm_prune.compile(pruned, target="host", output=tmp_path / "pruned.tar")
    dense = tvm_prune.compile(model, target="host", output=tmp_path / "dense.tar")
    # The masks are folded into the weights, not shipped next to them.
    assert len(package.members["mod.so"]) <= len(dense.members["mod.so"])
    ort = OrtReference(exported)
    with np.load(DIGITS / "digits_test.npz") as test:
        images = test["input"][:8]
    for image in images:
        feed = {"input": image[None]}
        # Masked float32 convs, the batch norms folded, summed in another order than ORT's.
        assert_outputs_close(package.run(feed), ort.run(feed), rel_tol=1e-4)
    with tarfile.open(tmp_path / "pruned.tar") as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    (report,) = [t["report"] for t in meta["transforms"] if t["name"] == "PruneWeights"]
    assert report["method"] == "layerwise"
    assert set(report["mask_sha256"]) == {layer.weight for layer in plan.layers}


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"method": "nope", "sparsity": 0.5}, "unknown pruning method"),
        ({"method": "layerwise"}, "needs --sparsity"),
        ({"method": "behavior"}, "needs --tolerance"),
        ({"method": "layerwise", "sparsity": 1.5}, "between 0 and 1"),
        ({"method": "behavior", "tolerance": 0.1, "metric": "l7"}, "unknown metric"),
    ],
)
def test_bad_requests_fail_before_any_work(kwargs, message):
    with pytest.raises(PruneError, match=message):
        prune_model(None, **kwargs)
