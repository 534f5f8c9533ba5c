"""The main job on the bundled example: compile the digits CNN for this machine, run its held-out
test split, and print accuracy, latency and size next to ONNX Runtime.

    python examples/digits/demo.py [--target host] [-o digits.tar]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.testing.ort import relative_error

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_cnn.onnx"
TEST_SET = HERE / "digits_test.npz"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="host", help="target preset (default: host)")
    parser.add_argument("-o", "--output", help="keep the package here (default: a temp folder)")
    args = parser.parse_args(argv)

    with np.load(TEST_SET) as data:
        images, labels = data["input"], data["label"]
    print(f"digits CNN: {MODEL.name}, {len(images)} held-out test images", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        output = Path(args.output or Path(tmp) / "digits.tar")
        start = time.perf_counter()
        package = tvm_prune.compile(MODEL, target=args.target, output=output)
        compile_s = time.perf_counter() - start
        print(f"compiled for {args.target} in {compile_s:.1f} s -> {output}", file=sys.stderr)

        runner = package.runner()
        input_name = package.inputs[0].name
        tvm_logits = np.concatenate(
            [next(iter(runner.run({input_name: image[None]}).values())) for image in images]
        )
        session = _ort_session()
        ort_logits = np.concatenate(
            [session.run(None, {input_name: image[None]})[0] for image in images]
        )

        sample = {input_name: images[:1]}
        tvm_ms = runner.benchmark(sample, repeat=30, number=20).median_ms
        ort_ms = _ort_median_ms(session, sample, repeat=30, number=20)
        package_kb = output.stat().st_size / 1024
        library_kb = len(package.members["mod.so"]) / 1024

    tvm_acc = float(np.mean(tvm_logits.argmax(1) == labels)) * 100
    ort_acc = float(np.mean(ort_logits.argmax(1) == labels)) * 100
    agree = float(np.mean(tvm_logits.argmax(1) == ort_logits.argmax(1))) * 100
    rows = [
        ("", "accuracy", "latency (median)", "size"),
        (
            "ONNX Runtime",
            f"{ort_acc:.2f} %",
            f"{ort_ms:.3f} ms",
            f"{MODEL.stat().st_size / 1024:.0f} KB onnx",
        ),
        (
            f"tvm-prune ({args.target})",
            f"{tvm_acc:.2f} %",
            f"{tvm_ms:.3f} ms ({tvm_ms / ort_ms:.1f}x ORT)",
            f"{package_kb:.0f} KB package, {library_kb:.0f} KB library",
        ),
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print(
        f"top-1 agreement with ONNX Runtime: {agree:.2f} %, max error "
        f"{relative_error(tvm_logits, ort_logits):.2e} of the logits' scale; "
        f"compile {compile_s:.1f} s"
    )
    return 0 if agree == 100.0 else 1


def _ort_session():
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(MODEL), options, providers=["CPUExecutionProvider"])


def _ort_median_ms(session, inputs, *, repeat: int, number: int) -> float:
    session.run(None, inputs)
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            session.run(None, inputs)
        times.append((time.perf_counter() - start) / number * 1e3)
    return float(np.median(times))


if __name__ == "__main__":
    sys.exit(main())
