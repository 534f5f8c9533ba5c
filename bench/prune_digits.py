"""Weight pruning on the bundled digits CNN: test accuracy vs sparsity for the four methods.

    python bench/prune_digits.py

Calibration: digits_calib.npz (64 training images). Reported accuracy: the 360-image test
split, never seen while pruning. No retraining. Also: what judging magnitudes on BN-folded
weights and each compensation (none, bias, least squares) buy, the cost of a full sensitivity
scan, the compile-once evaluator's numbers, and the package size at 70 % sparsity (package size
on bigger models: bench/package_size.py).
"""

from __future__ import annotations

import time
from pathlib import Path

import tvm_prune
from tvm_prune.prune.data import load_calibration
from tvm_prune.prune.engine import Evaluator
from tvm_prune.prune.greedy import greedy, sensitivity_scan
from tvm_prune.prune.methods import behavior, layerwise, magnitude
from tvm_prune.prune.metrics import accuracy
from tvm_prune.prune.session import PruneSession
from tvm_prune.prune.storage import storage_report

DIGITS = Path(__file__).resolve().parents[1] / "examples" / "digits"
SPARSITIES = (0.5, 0.6, 0.7, 0.8)


def main() -> None:
    model = tvm_prune.load_onnx(DIGITS / "digits_cnn.onnx")
    calib = load_calibration(DIGITS / "digits_calib.npz", model)
    test = load_calibration(DIGITS / "digits_test.npz", model)
    tester = Evaluator(model, test.inputs)
    dense_acc = accuracy(tester.run()[0], test.labels)

    def test_accuracy(session, plan) -> float:
        return accuracy(tester.run(session.changed_params(plan.thresholds))[0], test.labels)

    start = time.perf_counter()
    sessions = {
        (effective, compensation): PruneSession(
            model, calib, metric="kl", effective=effective, compensation=compensation
        )
        for effective in (False, True)
        for compensation in ("none", "bias", "least-squares")
    }
    setup = time.perf_counter() - start
    full = sessions[(True, "least-squares")]

    rows = []

    def fitted_scale(session, sparsity):
        return layerwise(session, sparsity=sparsity, rule="fitted-scale")

    for name, key, method in (
        ("magnitude (raw |w|)", (False, "none"), magnitude),
        ("magnitude (eff. + lsq)", (True, "least-squares"), magnitude),
        ("layerwise LAMP", (True, "least-squares"), layerwise),
        ("layerwise fitted scale", (True, "least-squares"), fitted_scale),
    ):
        for s in SPARSITIES:
            plan = method(sessions[key], sparsity=s)
            rows.append(
                (name, f"sparsity {s:.0%}", plan.sparsity, test_accuracy(sessions[key], plan))
            )
    for s in SPARSITIES:
        plan = greedy(full, sparsity=s)
        rows.append(("greedy (kl)", f"sparsity {s:.0%}", plan.sparsity, test_accuracy(full, plan)))
    for tol in (0.01, 0.03, 0.1, 0.3):
        plan = behavior(full, tolerance=tol)
        rows.append(("behavior (kl)", f"tolerance {tol}", plan.sparsity, test_accuracy(full, plan)))

    print(f"digits CNN, dense test accuracy {100 * dense_acc:.2f} % (360 images)\n")
    print(f"| {'method':<22} | {'target':<16} | sparsity | test acc | change |")
    print(f"|{'-' * 24}|{'-' * 18}|---------:|---------:|-------:|")
    for name, target, sparsity, acc in rows:
        print(
            f"| {name:<22} | {target:<16} | {100 * sparsity:7.1f}% | {100 * acc:7.2f}% "
            f"| {100 * (acc - dense_acc):+6.2f} |"
        )

    print("\nablation at 70 % sparsity (test accuracy %), global magnitude cut vs per layer:")
    print("| judged on / compensation | magnitude | layerwise LAMP | greedy (kl) |")
    print("|---|---:|---:|---:|")
    for key, session in sessions.items():
        cells = [
            100 * test_accuracy(session, method(session, sparsity=0.7))
            for method in (magnitude, layerwise, greedy)
        ]
        label = f"{'effective' if key[0] else 'raw'} / {key[1]}"
        print(f"| {label} | " + " | ".join(f"{c:.2f}" for c in cells) + " |")

    start = time.perf_counter()
    runs = full.evaluator.runs
    sensitivity_scan(full)
    scan = time.perf_counter() - start
    per_run = full.evaluator.run_seconds / full.evaluator.runs
    print(
        f"\nsensitivity scan: {len(full.layers)} layers x 10 levels = "
        f"{full.evaluator.runs - runs} evaluations of 64 images in {scan:.2f} s; "
        f"{per_run * 1000:.0f} ms per evaluation; "
        f"compile once {full.evaluator.compile_seconds:.1f} s; 6 sessions set up in {setup:.1f} s"
    )

    plan = greedy(full, sparsity=0.7)
    report = storage_report(model.params, {**model.params, **full.changed_params(plan.thresholds)})
    print(
        f"\n70 % sparsity (greedy, least squares): weights {report['raw_bytes']} B raw, "
        f"{report['dense_compressed_bytes']} B compressed dense, "
        f"{report['pruned_compressed_bytes']} B compressed pruned "
        f"({100 * report['pruned_to_dense']:.1f} %); whole packages: bench/package_size.py"
    )


if __name__ == "__main__":
    main()
