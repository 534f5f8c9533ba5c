"""Compile time and run latency of tvm-prune packages next to ONNX Runtime, measured side by side.

    python bench/compile_and_run.py [--det-size 640] [--repeat 20]

For each model: compile seconds by phase (import, build, export), package size, and the median
latency of tvm-prune's package and of ONNX Runtime (intra-op threads = cores) on the same input,
measured alternately so machine noise hits both. Prints a table; the ratio is tvm / ORT.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
from timing import print_table

import tvm_prune
from tvm_prune.testing import models

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--det-size", type=int, default=640, help="PP-OCRv4 det input side")
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds per model")
    args = parser.parse_args()

    digits = REPO / "examples" / "digits" / "digits_cnn.onnx"
    with np.load(REPO / "examples" / "digits" / "digits_test.npz") as data:
        digit = data["input"][:1]
    side = args.det_size
    cases = [
        ("digits CNN", digits, None, {"input": digit}),
        (
            f"PP-OCRv4 det {side}x{side}",
            models.ppocr_det_model(),
            {"x": (1, 3, side, side)},
            {"x": models.document_image(side, side)},
        ),
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, shapes, inputs in cases:
            package = tvm_prune.compile(
                path, input_shapes=shapes, output=Path(tmp) / "model.tar", target="host"
            )
            seconds = package.metadata.compile["seconds"]
            runner = package.runner()
            session = _ort_session(path)
            tvm_ms, ort_ms = _alternating_medians(runner, session, inputs, args.repeat)
            rows.append(
                (
                    name,
                    f"{sum(seconds.values()):.1f}",
                    "/".join(f"{seconds[p]:.1f}" for p in ("import", "build", "export")),
                    f"{(Path(tmp) / 'model.tar').stat().st_size / 1e6:.2f}",
                    f"{tvm_ms:.2f}",
                    f"{ort_ms:.2f}",
                    f"{tvm_ms / ort_ms:.1f}x",
                )
            )
            print(f"done: {name}", flush=True)
    header = (
        "model",
        "compile s",
        "import/build/export s",
        "package MB",
        "tvm ms",
        "ORT ms",
        "tvm/ORT",
    )
    print_table(header, rows)


def _ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _alternating_medians(runner, session, inputs, repeat: int) -> tuple[float, float]:
    runner.run(inputs)
    session.run(None, inputs)
    tvm_times, ort_times = [], []
    for _ in range(repeat):
        start = time.perf_counter()
        runner.run(inputs)
        tvm_times.append(time.perf_counter() - start)
        start = time.perf_counter()
        session.run(None, inputs)
        ort_times.append(time.perf_counter() - start)
    return float(np.median(tvm_times)) * 1e3, float(np.median(ort_times)) * 1e3


if __name__ == "__main__":
    main()
