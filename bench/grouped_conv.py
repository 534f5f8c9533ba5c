"""MACs and host latency of 3x3 convs at 56x56, dense vs rewritten grouped (g = 2, 4, 8).

    python bench/grouped_conv.py [--channels 64 128 256] [--repeat 20]

Each case is one ONNX ``Conv`` (3x3, padding 1, bias) + ``Relu`` whose C x C kernel is
block-diagonal with g blocks under random channel permutations (as group-structured pruning
leaves it). It is compiled twice with the host preset's build pipeline: with
``DenseToGroupedConv`` disabled (the dense conv multiplies the zeros) and enabled (a grouped
conv plus the channel permutations it could not fold; here the input is the model input and the
output the model output, so both stay as ``take``). The two packages are run alternately on the
same input (median of ``--repeat`` rounds) and their outputs compared; the ratio is
grouped / dense latency.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.testing import models
from tvm_prune.testing.ort import relative_error

SIZE = 56


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds per package")
    args = parser.parse_args()
    print("| C | g | MACs dense | MACs grouped | dense ms | grouped ms | grouped/dense | rel err |")
    print("|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for channels in args.channels:
            for groups in (2, 4, 8):
                kernel, _, _ = models.block_diagonal_kernel(channels, channels, groups, 3)
                path = models.save(
                    models.conv_chain([kernel], size=SIZE, producer=False),
                    Path(tmp) / f"conv{channels}_{groups}.onnx",
                )
                dense = tvm_prune.compile(
                    path,
                    target="host",
                    output=Path(tmp) / "dense.tar",
                    disabled_passes=["DenseToGroupedConv"],
                )
                grouped = tvm_prune.compile(path, target="host", output=Path(tmp) / "g.tar")
                report = {t["name"]: t["report"] for t in grouped.metadata.transforms}
                (entry,) = report["DenseToGroupedConv"]["rewrites"]
                assert entry["rewritten"] and entry["groups"] == groups, entry
                x = {"x": np.random.default_rng(0).standard_normal((1, channels, SIZE, SIZE))}
                x["x"] = x["x"].astype(np.float32)
                dense_ms, grouped_ms, error = _alternating(dense, grouped, x, args.repeat)
                print(
                    f"| {channels} | {groups} | {entry['macs_before'] / 1e6:.1f} M | "
                    f"{entry['macs_after'] / 1e6:.1f} M | {dense_ms:.2f} | {grouped_ms:.2f} | "
                    f"{grouped_ms / dense_ms:.2f} | {error:.1e} |",
                    flush=True,
                )


def _alternating(dense, grouped, inputs, repeat: int) -> tuple[float, float, float]:
    dense_runner, grouped_runner = dense.runner(), grouped.runner()
    (expected,) = dense_runner.run(inputs).values()
    (actual,) = grouped_runner.run(inputs).values()
    times = {"dense": [], "grouped": []}
    for _ in range(repeat):
        for name, runner in (("dense", dense_runner), ("grouped", grouped_runner)):
            start = time.perf_counter()
            runner.run(inputs)
            times[name].append(time.perf_counter() - start)
    medians = [float(np.median(times[name])) * 1e3 for name in ("dense", "grouped")]
    return medians[0], medians[1], relative_error(actual, expected)


if __name__ == "__main__":
    main()
