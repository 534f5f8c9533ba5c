"""Package size, dense vs 70 % weight sparsity, on models from 50 K to 11 M weights.

    python bench/package_size.py

Each prunable layer (conv2d, conv2d_transpose, matmul with weights) loses its smallest 70 % of
weights (the method does not change the size, only how many zeros there are). Both models are
compiled for the host preset with the same pipeline; the table lists the library (``mod.so``,
weights inside as constants), the package file (gzip-compressed tar) and their ratio.
"""

from __future__ import annotations

import dataclasses
import tempfile
from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.prune.layers import find_layers
from tvm_prune.testing.models import ppocr_det_model, save
from tvm_prune.testing.networks import resnet18_like

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


def pruned_copy(model, sparsity: float):
    params = dict(model.params)
    for layer in find_layers(model.mod, model.params):
        weight = np.asarray(params[layer.weight])
        cut = np.quantile(np.abs(weight), sparsity)
        params[layer.weight] = np.where(np.abs(weight) < cut, 0, weight).astype(weight.dtype)
    return dataclasses.replace(model, params=params)


def main() -> None:
    with tempfile.TemporaryDirectory(prefix="tvm-prune-bench-") as tmp:
        models = {
            "digits CNN": tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx"),
            "ResNet-18-shaped": tvm_prune.load_onnx(save(resnet18_like(), Path(tmp) / "r18.onnx")),
            "PP-OCRv4 det": tvm_prune.load_onnx(
                ppocr_det_model(), input_shapes={"x": (1, 3, 640, 640)}
            ),
        }
        print(
            "| model | weights | mod.so dense | mod.so 70% | package dense | package 70% | ratio |"
        )
        print("|---|---:|---:|---:|---:|---:|---:|")
        for name, model in models.items():
            weights = sum(np.asarray(v).size for v in model.params.values())
            sizes = []
            for kind, variant in (("dense", model), ("pruned", pruned_copy(model, 0.7))):
                out = Path(tmp) / f"{kind}.tar"
                package = tvm_prune.compile(variant, target="host", output=out)
                sizes += [len(package.members["mod.so"]), out.stat().st_size]
            print(
                f"| {name} | {weights / 1e6:.2f} M | {sizes[0] / 1e6:.2f} MB "
                f"| {sizes[2] / 1e6:.2f} MB | {sizes[1] / 1e6:.2f} MB | {sizes[3] / 1e6:.2f} MB "
                f"| {100 * sizes[3] / sizes[1]:.1f} % |",
                flush=True,
            )


if __name__ == "__main__":
    main()
