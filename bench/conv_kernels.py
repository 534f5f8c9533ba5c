"""One conv at a time: the zero-tuning CPU rules against ONNX Runtime, GFLOP/s side by side.

    TVM_NUM_THREADS=1 python bench/conv_kernels.py [--threads 1] [--repeat 20] [--only ppocr]

Each ResNet-18, MobileNetV2 and PP-OCR det layer shape (conv + bias + ReLU, batch 1, random
weights) is a one-node ONNX model, compiled with ``tvm_prune.compile(target="host")`` and run
next to an ORT session on the same input, in alternation (median of ``--repeat`` rounds). With
one thread on each side (the default) the ratio is far less sensitive to other load on the
machine than whole-model timings. Outputs are compared too (max |tvm - ort| / max |ort|).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np

# name: (C, H=W, K, kernel, stride, groups)
RESNET18 = {
    "r18 stem 7x7/2": (3, 224, 64, 7, 2, 1),
    "r18 3x3 64@56": (64, 56, 64, 3, 1, 1),
    "r18 3x3/2 64-128": (64, 56, 128, 3, 2, 1),
    "r18 1x1/2 64-128": (64, 56, 128, 1, 2, 1),
    "r18 3x3 128@28": (128, 28, 128, 3, 1, 1),
    "r18 3x3/2 128-256": (128, 28, 256, 3, 2, 1),
    "r18 3x3 256@14": (256, 14, 256, 3, 1, 1),
    "r18 3x3/2 256-512": (256, 14, 512, 3, 2, 1),
    "r18 3x3 512@7": (512, 7, 512, 3, 1, 1),
}
MOBILENETV2 = {
    "mv2 stem 3x3/2": (3, 224, 32, 3, 2, 1),
    "mv2 1x1 16-96@112": (16, 112, 96, 1, 1, 1),
    "mv2 dw/2 96@112": (96, 112, 96, 3, 2, 96),
    "mv2 1x1 96-24@56": (96, 56, 24, 1, 1, 1),
    "mv2 1x1 24-144@56": (24, 56, 144, 1, 1, 1),
    "mv2 dw 144@56": (144, 56, 144, 3, 1, 144),
    "mv2 1x1 144-24@56": (144, 56, 24, 1, 1, 1),
    "mv2 1x1 32-192@28": (32, 28, 192, 1, 1, 1),
    "mv2 dw 192@28": (192, 28, 192, 3, 1, 192),
    "mv2 1x1 192-32@28": (192, 28, 32, 1, 1, 1),
    "mv2 1x1 64-384@14": (64, 14, 384, 1, 1, 1),
    "mv2 1x1 384-64@14": (384, 14, 64, 1, 1, 1),
    "mv2 1x1 96-576@14": (96, 14, 576, 1, 1, 1),
    "mv2 dw 960@7": (960, 7, 960, 3, 1, 960),
    "mv2 1x1 960-320@7": (960, 7, 320, 1, 1, 1),
    "mv2 1x1 320-1280@7": (320, 7, 1280, 1, 1, 1),
}
# The slowest PP-OCRv4 det 640 convs (its neck and head: few output channels, big inputs).
PPOCR_DET = {
    "ppocr 3x3 96-24@160": (96, 160, 24, 3, 1, 1),
    "ppocr 3x3 96-24@80": (96, 80, 24, 3, 1, 1),
    "ppocr 1x1 48-48@160": (48, 160, 48, 1, 1, 1),
    "ppocr 1x1 192-192@40": (192, 40, 192, 1, 1, 1),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="threads for ORT and TVM")
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds per kernel")
    parser.add_argument("--only", default="", help="comma-separated prefixes: r18, mv2, ppocr")
    args = parser.parse_args()
    # TVM reads its thread count once, when its runtime thread pool starts.
    os.environ.setdefault("TVM_NUM_THREADS", str(args.threads))
    import onnxruntime as ort
    from timing import alternating, print_table

    import tvm_prune
    from tvm_prune.testing import models, networks
    from tvm_prune.testing.ort import relative_error

    cases = {**RESNET18, **MOBILENETV2, **PPOCR_DET}
    prefixes = tuple(p for p in args.only.split(",") if p)
    rows = []
    totals = {"ORT": 0.0, "rules": 0.0}
    with tempfile.TemporaryDirectory() as tmp:
        for name, (c, size, k, kernel, stride, groups) in cases.items():
            if prefixes and not name.startswith(prefixes):
                continue
            onnx_model = networks.single_op(
                "Conv",
                (1, c, size, size),
                weight=(k, c // groups, kernel, kernel),
                pads=[kernel // 2] * 4,
                strides=[stride, stride],
                group=groups,
            )
            path = models.save(onnx_model, Path(tmp) / "conv.onnx")
            package = tvm_prune.compile(path, output=Path(tmp) / "conv.tar", target="host")
            runner = package.runner()
            options = ort.SessionOptions()
            options.intra_op_num_threads = args.threads
            session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
            x = np.random.default_rng(0).standard_normal((1, c, size, size)).astype(np.float32)
            inputs = {"x": x}
            (actual,) = runner.run(inputs).values()
            error = relative_error(actual, session.run(None, inputs)[0])
            times = alternating(
                {"ORT": lambda: session.run(None, inputs), "rules": lambda: runner.run(inputs)},
                {},
                args.repeat,
            )
            out = (size + stride - 1) // stride
            gflop = 2 * k * out * out * (c // groups) * kernel * kernel / 1e9
            for label in totals:
                totals[label] += times[label]
            rows.append(
                (
                    name,
                    f"{gflop * 1e3:.1f}",
                    f"{times['ORT']:.3f}",
                    f"{times['rules']:.3f}",
                    f"{times['rules'] / times['ORT']:.2f}x",
                    f"{gflop / times['ORT'] * 1e3:.1f}",
                    f"{gflop / times['rules'] * 1e3:.1f}",
                    f"{error:.1e}",
                )
            )
            print(f"done: {name}", flush=True)
    rows.append(
        ("total", "", f"{totals['ORT']:.3f}", f"{totals['rules']:.3f}",
         f"{totals['rules'] / totals['ORT']:.2f}x", "", "", "")
    )  # fmt: skip
    header = (
        "conv",
        "MFLOP",
        "ORT ms",
        "rules ms",
        "rules/ORT",
        "ORT GF/s",
        "rules GF/s",
        "rel err",
    )
    print(f"threads: {args.threads} (ORT intra-op and TVM_NUM_THREADS)")
    print_table(header, rows)


if __name__ == "__main__":
    main()
