"""The bundled digits example: compiled package equals ONNX Runtime on the whole test split."""

from __future__ import annotations

import numpy as np

import tvm_prune
from tvm_prune.testing.ort import OrtReference, assert_outputs_close

from .conftest import DIGITS


def test_digits_package_matches_onnxruntime(tmp_path):
    model = DIGITS / "digits_cnn.onnx"
    package = tvm_prune.compile(model, target="host", output=tmp_path / "digits.tar")
    with np.load(DIGITS / "digits_test.npz") as data:
        images, labels = data["input"], data["label"]
    runner = package.runner()
    ours = np.concatenate([runner.run({"input": image[None]})["logits"] for image in images])
    session = OrtReference(model)
    reference = np.concatenate([session.run({"input": image[None]})["logits"] for image in images])
    # float32 convs with the batch norm folded into them, summed in another order than ORT's.
    assert_outputs_close({"logits": ours}, {"logits": reference}, rel_tol=1e-4)
    accuracy = float(np.mean(ours.argmax(1) == labels))
    assert accuracy >= 0.99, accuracy


def test_demo_runs(capsys):
    from examples.digits import demo

    # Exit 0 only if both packages agree with ONNX Runtime on every test image.
    assert demo.main([]) == 0
    out = capsys.readouterr().out
    assert "ONNX Runtime" in out and "tvm-prune (host), 100% of the MACs" in out
    assert "tvm-prune (host), pruned, 60% of the MACs" in out
    assert out.count("top-1 agreement with ONNX Runtime on its ONNX model 100.00 %") == 2
