"""The main job on the bundled example: compile the digits CNN for this machine, prune 40 % of its
multiply-adds away as whole channels and compile that too, run the held-out test split through
both, and print accuracy, latency and size next to ONNX Runtime.

    python examples/digits/demo.py [--target host] [--macs 0.6] [-o folder]
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
from tvm_prune.prune.api import prune_model_channels
from tvm_prune.prune.data import load_calibration
from tvm_prune.prune.onnx_export import export_onnx
from tvm_prune.testing.ort import relative_error

HERE = Path(__file__).resolve().parent
MODEL = HERE / "digits_cnn.onnx"
TEST_SET = HERE / "digits_test.npz"
CALIBRATION = HERE / "digits_calib.npz"
# Recovery fine-tuning on the 64 labelled calibration images (Adam, batches of 32): the channels
# removed by filter magnitude cost most of the accuracy until then.
FINE_TUNE_STEPS = 100
# Pruned layers keep whole vectors of channels (8 float32 lanes on AVX2, 4 on NEON).
CHANNEL_MULTIPLE = 8


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", default="host", help="target preset (default: host)")
    parser.add_argument(
        "--macs", type=float, default=0.6, help="fraction of the MACs to keep (default: 0.6)"
    )
    parser.add_argument("-o", "--output", help="keep the packages here (default: a temp folder)")
    args = parser.parse_args(argv)

    with np.load(TEST_SET) as data:
        images, labels = data["input"], data["label"]
    print(f"digits CNN: {MODEL.name}, {len(images)} held-out test images", file=sys.stderr)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(args.output or tmp)
        model = tvm_prune.load_onnx(MODEL)
        start = time.perf_counter()
        dense = tvm_prune.compile(model, target=args.target, output=folder / "digits.tar")
        compile_s = time.perf_counter() - start
        print(f"compiled for {args.target} in {compile_s:.1f} s", file=sys.stderr)

        start = time.perf_counter()
        pruned_model, report = prune_model_channels(
            model,
            macs=args.macs,
            data=load_calibration(CALIBRATION, model),
            fine_tune_steps=FINE_TUNE_STEPS,
            multiple=CHANNEL_MULTIPLE,
        )
        pruned_onnx = export_onnx(pruned_model, folder / "digits_pruned.onnx")
        pruned = tvm_prune.compile(
            pruned_model, target=args.target, output=folder / "digits_pruned.tar"
        )
        prune_s = time.perf_counter() - start
        print(f"pruned and compiled in {prune_s:.1f} s", file=sys.stderr)

        rows = [("", "accuracy", "latency (median)", "size")]
        agreements = []
        for label, package, onnx_path, macs in (
            (f"tvm-prune ({args.target})", dense, MODEL, 1.0),
            (f"tvm-prune ({args.target}), pruned", pruned, pruned_onnx, report["macs_kept"]),
        ):
            session = _ort_session(onnx_path)
            ours, ours_ms = _evaluate(package, images)
            reference = np.concatenate(
                [session.run(None, {"input": image[None]})[0] for image in images]
            )
            ort_ms = _ort_median_ms(session, {"input": images[:1]}, repeat=30, number=20)
            if onnx_path == MODEL:
                ort_row = ("ONNX Runtime", _accuracy(reference, labels), f"{ort_ms:.3f} ms")
                rows.append((*ort_row, f"{MODEL.stat().st_size / 1024:.0f} KB onnx"))
            rows.append(
                (
                    f"{label}, {macs:.0%} of the MACs",
                    _accuracy(ours, labels),
                    f"{ours_ms:.3f} ms ({ours_ms / ort_ms:.1f}x ORT on the same model)",
                    f"{package.path.stat().st_size / 1024:.0f} KB package, "
                    f"{len(package.members['mod.so']) / 1024:.0f} KB library",
                )
            )
            agree = float(np.mean(ours.argmax(1) == reference.argmax(1))) * 100
            agreements.append((label, agree, relative_error(ours, reference)))

    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    for label, agree, error in agreements:
        print(
            f"{label}: top-1 agreement with ONNX Runtime on its ONNX model {agree:.2f} %, "
            f"max error {error:.2e} of the logits' scale"
        )
    print(f"compile {compile_s:.1f} s; prune (fine-tuning included) and compile {prune_s:.1f} s")
    return 0 if all(agree == 100.0 for _, agree, _ in agreements) else 1


def _evaluate(package, images) -> tuple[np.ndarray, float]:
    """Logits on every image, and the median latency on one."""
    runner = package.runner()
    logits = np.concatenate([runner.run({"input": image[None]})["logits"] for image in images])
    return logits, runner.benchmark({"input": images[:1]}, repeat=30, number=20).median_ms


def _accuracy(logits: np.ndarray, labels: np.ndarray) -> str:
    return f"{float(np.mean(logits.argmax(1) == labels)) * 100:.2f} %"


def _ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


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
