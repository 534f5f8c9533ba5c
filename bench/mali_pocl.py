"""Mali rules vs dlight's generic GPU rules, both run on PoCL here: a proxy, not Mali timings.

    python bench/mali_pocl.py [--rounds 5] [--det-size 128] [--only conv3x3,dense]

Each case (one-operator models at typical layer sizes, the digits CNN, PP-OCRv4 det) is
compiled twice for mali-g76: with the Mali rules (dlight's rules for what they leave) and with
dlight's generic GPU rules only (TVM's gpu_generic schedules). Both builds run the same input
through the OpenCL runner on PoCL, in alternation (``--rounds`` turns of best-of-3 each) so
machine noise hits both, after checking they agree with each other (1e-4 of the output scale).

PoCL runs OpenCL work-groups as loops on this machine's 2 CPU cores: it rewards the same
things as a Mali GPU only in part (fewer, wider memory accesses; more work per work-item),
and nothing about Mali's caches, occupancy or launch costs. The ratio is a proxy for "does
the schedule do less work per output", not a Mali speed-up; measure on a device for that.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.testing import models, networks
from tvm_prune.testing.opencl import OpenCLRunner, compile_for_opencl
from tvm_prune.testing.ort import random_inputs, relative_error

REPO = Path(__file__).resolve().parents[1]

OPERATORS = {
    "conv3x3": ("Conv", (1, 32, 56, 56), (32, 32, 3, 3), {"pads": [1] * 4}),
    "conv1x1": ("Conv", (1, 64, 28, 28), (128, 64, 1, 1), {}),
    "conv3x3_s2": ("Conv", (1, 32, 56, 56), (64, 32, 3, 3), {"pads": [1] * 4, "strides": [2, 2]}),
    "depthwise": ("Conv", (1, 64, 56, 56), (64, 1, 3, 3), {"pads": [1] * 4, "group": 64}),
    "grouped": ("Conv", (1, 64, 28, 28), (64, 8, 3, 3), {"pads": [1] * 4, "group": 8}),
    "conv_transpose": (
        "ConvTranspose",
        (1, 32, 28, 28),
        (32, 16, 3, 3),
        {"strides": [2, 2], "pads": [1] * 4, "output_padding": [1, 1]},
    ),
    "dense": ("Gemm", (8, 1024), (1024, 1000), {}),
    "maxpool": ("MaxPool", (1, 64, 56, 56), None, {"kernel_shape": [3, 3], "strides": [2, 2]}),
}


def cases(det_size: int, tmp: Path):
    """(name, Model, inputs) for every case."""
    for name, (op, x_shape, weight, attrs) in OPERATORS.items():
        path = models.save(networks.single_op(op, x_shape, weight=weight, **attrs), tmp / name)
        model = tvm_prune.load_onnx(path)
        yield name, model, random_inputs(model.inputs, seed=0)
    digits = tvm_prune.load_onnx(REPO / "examples" / "digits" / "digits_cnn.onnx")
    yield "digits_cnn", digits, random_inputs(digits.inputs, seed=0)
    if det_size:
        shape = {"x": (1, 3, det_size, det_size)}
        det = tvm_prune.load_onnx(models.ppocr_det_model(), input_shapes=shape)
        yield f"ppocr_det_{det_size}", det, {"x": models.document_image(det_size, det_size)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5, help="alternating timing turns")
    parser.add_argument("--det-size", type=int, default=128, help="PP-OCRv4 det side; 0 skips")
    parser.add_argument("--only", default="", help="comma-separated case names")
    args = parser.parse_args()
    only = set(filter(None, args.only.split(",")))

    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, model, inputs in cases(args.det_size, Path(tmp)):
            if only and name not in only:
                continue
            print(f"[{name}] compiling both builds ...", flush=True)
            arrays = [inputs[spec.name] for spec in model.inputs]
            report: dict = {}
            mali = OpenCLRunner(compile_for_opencl(model, "mali-g76", report=report))
            generic = OpenCLRunner(compile_for_opencl(model, "mali-g76", rules=()))
            error = max(
                relative_error(a, b)
                for a, b in zip(mali.run(arrays), generic.run(arrays), strict=True)
            )
            if not error <= 1e-4:
                raise SystemExit(f"{name}: the two builds disagree ({error:.2e} of scale)")
            best = {"mali": np.inf, "generic": np.inf}
            for turn in range(args.rounds):
                best["generic"] = min(best["generic"], generic.time(arrays, repeat=3))
                best["mali"] = min(best["mali"], mali.time(arrays, repeat=3))
                print(f"[{name}] turn {turn + 1}/{args.rounds}", flush=True)
            took = sum(n for rule, n in report["scheduled"].items() if rule.startswith("mali."))
            total = sum(report["scheduled"].values())
            rows.append((name, best["generic"], best["mali"], f"{took}/{total}", error))

    print()
    print("| case | dlight generic (ms) | Mali rules (ms) | speed-up | kernels by Mali rules |")
    print("| --- | ---: | ---: | ---: | ---: |")
    for name, generic_s, mali_s, took, _ in rows:
        print(
            f"| {name} | {generic_s * 1e3:.2f} | {mali_s * 1e3:.2f} | "
            f"{generic_s / mali_s:.2f}x | {took} |"
        )
    print("\nPoCL on this machine's CPU: a proxy for the work per output, not Mali timings.")


if __name__ == "__main__":
    main()
