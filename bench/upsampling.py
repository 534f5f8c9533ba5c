"""Upsampling kernels side by side: ONNX Runtime's Resize, TVM's resize2d, TVM's generic
conv2d_transpose (``LowerUpsampling`` alone) and the weight-free polyphase kernel
(``LowerUpsampling`` + ``EmitUpsampleKernels``), on 1x64x160x160, x2 and x4, nearest and bilinear.
A second table decides ``FoldUpsampleIntoConv``: nearest x2 + 3x3 conv compiled by tvm-prune
with the fold and without it (the resize then becomes the polyphase kernel), next to ORT.

    python bench/upsampling.py [--repeat 20]

Timings alternate between the variants so machine noise hits all; the tables give medians in ms
and ratios to ONNX Runtime.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import tvm
from timing import print_table
from tvm import relax

import tvm_prune
from tvm_prune.testing import models
from tvm_prune.testing.ort import relative_error
from tvm_prune.transform.emit_upsample_kernels import EmitUpsampleKernels
from tvm_prune.transform.lower_upsampling import LowerUpsampling

SHAPE = (1, 64, 160, 160)
# (input shape, conv output channels): decoder-like resize-convs.
FOLD_CASES = [((1, 64, 80, 80), 64), ((1, 96, 80, 80), 24), ((1, 128, 40, 40), 128)]
CASES = [
    ("nearest", "asymmetric", 2),
    ("nearest", "asymmetric", 4),
    ("linear", "half_pixel", 2),
    ("linear", "half_pixel", 4),
]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    target = tvm_prune.target.resolve_target("host").target
    x = np.random.default_rng(0).standard_normal(SHAPE).astype(np.float32)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for mode, coordinate_mode, scale in CASES:
            path = models.save(
                models.resize(
                    SHAPE,
                    (scale, scale),
                    mode=mode,
                    coordinate_mode=coordinate_mode,
                    nearest_mode="floor",
                ),
                Path(tmp) / "resize.onnx",
            )
            mod = tvm_prune.load_onnx(path).mod
            variants = {
                "tvm resize2d": mod,
                "generic conv2d_transpose": LowerUpsampling()(mod),
                "polyphase kernel": EmitUpsampleKernels()(LowerUpsampling()(mod)),
            }
            runners = {name: _vm(m, target) for name, m in variants.items()}
            runners["ORT Resize"] = _ort(path)
            reference = runners["ORT Resize"](x)
            for name, run in runners.items():
                assert relative_error(_numpy(run(x)), reference) < 1e-5, name
            times = _alternating_medians(runners, x, args.repeat)
            ort = times["ORT Resize"]
            rows.append(
                (f"{mode} x{scale}", *(f"{t:.2f} ({t / ort:.1f}x)" for t in times.values()))
            )
            print(f"done: {mode} x{scale}", flush=True)
        print_table(("case", *runners), rows)
        print_table(*_fold_table(Path(tmp), args.repeat))


def _fold_table(tmp: Path, repeat: int):
    rows = []
    for shape, out_channels in FOLD_CASES:
        path = models.save(models.resize_conv(shape, (2, 2), out_channels), tmp / "rc.onnx")
        x = np.random.default_rng(0).standard_normal(shape).astype(np.float32)
        runners = {}
        for name, disabled in (("resize kernel + conv", ["FoldUpsampleIntoConv"]), ("folded", [])):
            package = tvm_prune.compile(
                path, output=tmp / "rc.tar", target="host", disabled_passes=disabled
            )
            runner = package.runner()
            runners[name] = lambda x, runner=runner: runner.run({"x": x})["out"]
        runners["ORT"] = lambda x, run=_ort(path, "out"): run(x)
        reference = runners["ORT"](x)
        for name, run in runners.items():
            assert relative_error(run(x), reference) < 1e-5, name
        times = _alternating_medians(runners, x, repeat)
        ort = times["ORT"]
        speedup = times["resize kernel + conv"] / times["folded"]
        rows.append(
            (
                f"{shape[1]}->{out_channels} at {shape[2]}x{shape[3]}",
                *(f"{t:.2f} ({t / ort:.1f}x)" for t in times.values()),
                f"{speedup:.2f}",
            )
        )
        print(f"done: fold {shape} -> {out_channels}", flush=True)
    return ("nearest x2 + conv3x3", *runners, "fold speedup"), rows


def _vm(mod, target):
    """Runs on a device tensor made once, returns the device result: no host copies timed."""
    vm = relax.VirtualMachine(tvm.compile(mod, target), tvm.cpu())
    cache = {}

    def run(x):
        if id(x) not in cache:
            cache[id(x)] = tvm.runtime.tensor(x)
        return vm["main"](cache[id(x)])

    return run


def _numpy(value):
    return value if isinstance(value, np.ndarray) else value.numpy()


def _ort(path, output=None):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    outputs = None if output is None else [output]
    return lambda x: session.run(outputs, {"x": x})[0]


def _alternating_medians(runners, x, repeat):
    times = {name: [] for name in runners}
    for _ in range(repeat):
        for name, run in runners.items():
            start = time.perf_counter()
            run(x)
            times[name].append((time.perf_counter() - start) * 1e3)
    return {name: float(np.median(t)) for name, t in times.items()}


if __name__ == "__main__":
    main()
