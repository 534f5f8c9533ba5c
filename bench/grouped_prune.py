"""Behaviour change vs groups for group-structured pruning, digits CNN and PP-OCRv4 det.

    python bench/grouped_prune.py [--det-size 160] [--tolerance-digits 0.02] [--tolerance-det 0.05]
        [--compensation least-squares]

For g = 2, 4, 8 every dense conv whose channels g divides is grouped at once (block assignment of
``tvm_prune.prune.grouping``, ``--compensation`` fitted on calibration data); then ``plan_groups``
chooses layers and g within a tolerance. Columns: convs grouped, conv MACs left (fraction of the
dense model's conv MACs), |w| kept (mean over grouped layers), the behaviour metric (digits:
KL in nats and test accuracy; det: relative L2 of the probability map), and the compiled
package's DenseToGroupedConv rewrites (the grouped convs really built).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.prune import grouping
from tvm_prune.prune.data import CalibrationData, load_calibration
from tvm_prune.prune.engine import Evaluator
from tvm_prune.prune.metrics import accuracy
from tvm_prune.prune.session import PruneSession
from tvm_prune.testing import models

REPO = Path(__file__).resolve().parents[1]
DIGITS = REPO / "examples" / "digits"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--det-size", type=int, default=160, help="PP-OCRv4 det input side")
    parser.add_argument("--tolerance-digits", type=float, default=0.02, help="KL budget")
    parser.add_argument("--tolerance-det", type=float, default=0.05, help="rel-L2 budget")
    parser.add_argument(
        "--compensation", default="least-squares", choices=["none", "bias", "least-squares"]
    )
    args = parser.parse_args()

    digits = tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx")
    with np.load(DIGITS / "digits_test.npz") as data:
        test = Evaluator(digits, {"input": data["input"]}), data["label"]
    _report(
        "digits CNN",
        PruneSession(
            digits,
            load_calibration(DIGITS / "digits_calib.npz", digits),
            compensation=args.compensation,
        ),
        args.tolerance_digits,
        test,
    )
    side = args.det_size
    det = tvm_prune.load_onnx(models.ppocr_det_model(), input_shapes={"x": (1, 3, side, side)})
    images = np.stack([models.document_image(side, side, seed=s) for s in range(8)])
    calib = CalibrationData({"x": images}, None, "document_image seeds 0-7")
    _report(
        f"PP-OCRv4 det {side}x{side}",
        PruneSession(det, calib, metric="rel-l2", compensation=args.compensation),
        args.tolerance_det,
        None,
    )


def _report(name, session, tolerance, test) -> None:
    start = time.perf_counter()
    layers = grouping.groupable_layers(session)
    params = session.model.params
    macs = {layer.weight: layer.macs_per_weight * params[layer.weight].size for layer in layers}
    all_conv = sum(
        layer.macs_per_weight * params[layer.weight].size
        for layer in session.layers
        if layer.op == "conv2d"
    )
    print(f"\n## {name}: {len(layers)} dense convs groupable, metric {session.metric}\n")
    print("| setting | convs grouped | conv MACs left | kept abs(w) | metric | test acc | built |")
    print("|---|---|---|---|---|---|---|")
    dense_acc = _accuracy({}, test)
    print(f"| dense | 0 | 1.000 | 1.000 | 0 | {dense_acc} | - |")
    for g in (2, 4, 8):
        chosen = {
            layer.weight: g
            for layer in layers
            if params[layer.weight].shape[0] % g == 0 and params[layer.weight].shape[1] % g == 0
        }
        _row(f"all g={g}", session, chosen, macs, all_conv, test)
    plan = grouping.plan_groups(session, tolerance=tolerance)
    _row(f"plan (tol {tolerance})", session, plan.groups, macs, all_conv, test, built=True)
    print(f"\n{session.evaluations} evaluations, {time.perf_counter() - start:.0f} s")


def _row(label, session, chosen, macs, all_conv, test, *, built=False) -> None:
    changed, kept = {}, []
    layers = {layer.weight: layer for layer in session.layers}
    for name, g in chosen.items():
        changes, assignment = grouping.grouped_changes(session, layers[name], g)
        changed.update(changes)
        kept.append(assignment.kept)
    value = session.metric_of(changed)
    saved = sum(macs[n] * (1 - 1 / g) for n, g in chosen.items())
    rewrites = "-"
    if built:
        plan = grouping.GroupPlan(session.metric, 0.0, dict(chosen), (), value)
        model = grouping.apply_group_plan(session.model, session, plan)
        with tempfile.TemporaryDirectory() as tmp:
            package = tvm_prune.compile(model, target="host", output=Path(tmp) / "g.tar")
        report = {t["name"]: t["report"] for t in package.metadata.transforms}
        rewritten = [e for e in report["DenseToGroupedConv"]["rewrites"] if e.get("rewritten")]
        rewrites = f"{len(rewritten)} grouped convs"
    print(
        f"| {label} | {len(chosen)} | {1 - saved / all_conv:.3f} | "
        f"{np.mean(kept) if kept else 1.0:.3f} | {value:.4f} | "
        f"{_accuracy(changed, test)} | {rewrites} |"
    )


def _accuracy(changed, test) -> str:
    if test is None:
        return "-"
    evaluator, labels = test
    return f"{accuracy(evaluator.run(changed)[0], labels):.3f}"


if __name__ == "__main__":
    main()
