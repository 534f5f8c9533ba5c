"""Weight pruning on PP-OCRv4 det (rapidocr-onnxruntime wheel): behaviour change vs sparsity.

    python bench/prune_ppocr_det.py [--size 160] [--images 4]

Calibration: rendered text pages (``tvm_prune.testing.models.document_image``), no labels.
Behaviour change: relative L2 and cosine distance of the probability map against the dense
model. Also the time of a sensitivity scan and the packed weight size at ~70 % sparsity.
"""

from __future__ import annotations

import argparse
import time

import numpy as np

import tvm_prune
from tvm_prune.prune.data import CalibrationData
from tvm_prune.prune.greedy import greedy
from tvm_prune.prune.methods import behavior, layerwise, magnitude
from tvm_prune.prune.metrics import cosine_distance
from tvm_prune.prune.session import PruneSession
from tvm_prune.prune.storage import storage_report
from tvm_prune.testing.models import document_image, ppocr_det_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=160)
    parser.add_argument("--images", type=int, default=4)
    args = parser.parse_args()
    side = args.size
    model = tvm_prune.load_onnx(ppocr_det_model(), input_shapes={"x": (1, 3, side, side)})
    pages = np.concatenate([document_image(side, side, seed=i) for i in range(args.images)])
    data = CalibrationData({"x": pages}, None, f"{args.images} rendered pages {side}x{side}")

    start = time.perf_counter()
    raw = PruneSession(model, data, metric="rel-l2", effective=False, compensation="none")
    full = PruneSession(model, data, metric="rel-l2", effective=True)
    bias_only = PruneSession(model, data, metric="rel-l2", effective=True, compensation="bias")
    masks_only = PruneSession(model, data, metric="rel-l2", effective=True, compensation="none")
    setup = time.perf_counter() - start
    size = sum(full.sizes.values())
    print(
        f"PP-OCRv4 det {side}x{side}: {len(full.layers)} prunable layers, {size} weights; "
        f"{args.images} rendered pages; four sessions set up (compiles) in {setup:.0f} s\n"
    )

    def row(name, session, plan):
        outputs = session.evaluator.run(session.changed_params(plan.thresholds))[0]
        cos = cosine_distance(session.dense_outputs[0], outputs)
        emptied = sum(1 for layer in plan.layers if layer.pruned == layer.size)
        print(
            f"| {name:<34} | {100 * plan.sparsity:6.1f}% | {plan.result['metric']:7.4f} "
            f"| {cos:8.5f} | {emptied} |"
        )
        return plan

    print(f"| {'method':<34} | sparsity | rel-L2 | cos dist | layers emptied |")
    print(f"|{'-' * 36}|---------:|-------:|---------:|---:|")
    plans = {}
    for s in (0.1, 0.3, 0.5, 0.7):
        row(f"magnitude raw |w|, {s:.0%}", raw, magnitude(raw, sparsity=s))
        row(f"magnitude effective + lsq, {s:.0%}", full, magnitude(full, sparsity=s))
        plans[s] = row(f"layerwise LAMP, {s:.0%}", full, layerwise(full, sparsity=s))
        row(
            f"layerwise fitted scale, {s:.0%}",
            full,
            layerwise(full, sparsity=s, rule="fitted-scale"),
        )
    for tol in (0.05, 0.2):
        row(
            f"behavior rel-l2 <= {tol} (global)",
            full,
            behavior(full, tolerance=tol, per_layer=False),
        )

    print("\ncompensation ablation, layerwise LAMP on effective weights (rel-L2 of the output):")
    print("| sparsity | none | bias | least squares |")
    print("|---:|---:|---:|---:|")
    for s in (0.3, 0.5, 0.7):
        cells = [
            layerwise(session, sparsity=s).result["metric"]
            for session in (masks_only, bias_only, full)
        ]
        print(f"| {s:.0%} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")

    levels = (0.0, 0.3, 0.6, 0.9)
    start, runs = time.perf_counter(), full.evaluator.runs
    plan = greedy(full, tolerance=0.05, levels=levels)
    seconds = time.perf_counter() - start
    row("greedy rel-l2 <= 0.05", full, plan)
    scan_runs = len(full.layers) * (len(levels) - 1)
    per_run = full.evaluator.run_seconds / full.evaluator.runs
    print(
        f"\ngreedy: sensitivity scan {scan_runs} evaluations + {len(plan.steps)} steps = "
        f"{full.evaluator.runs - runs} evaluations in {seconds:.0f} s "
        f"({per_run:.2f} s per evaluation of {args.images} images)"
    )
    predicted = [(s["predicted_loss"], s["measured_loss"]) for s in plan.steps]
    if predicted:
        errors = np.array([m - p for p, m in predicted])
        print(
            f"greedy predictor error (measured - predicted): median {np.median(errors):+.4f}, "
            f"max |err| {np.max(np.abs(errors)):.4f} over {len(errors)} steps"
        )
    pruned = {**model.params, **full.changed_params(plans[0.7].thresholds)}
    report = storage_report(model.params, pruned)
    print(
        f"\nweights at 70 % sparsity (layerwise LAMP): {report['raw_bytes'] / 1e6:.2f} MB raw, "
        f"compressed {report['dense_compressed_bytes'] / 1e6:.2f} MB dense -> "
        f"{report['pruned_compressed_bytes'] / 1e6:.2f} MB pruned "
        f"({100 * report['pruned_to_dense']:.1f} %)"
    )


if __name__ == "__main__":
    main()
