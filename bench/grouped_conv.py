"""MACs and host latency of 3x3 convs at 56x56, dense vs rewritten grouped (g = 2, 4, 8).

    python bench/grouped_conv.py [--channels 64 128 256] [--repeat 20]

Each case is one ONNX ``Conv`` (3x3, padding 1, bias) + ``Relu`` whose C x C kernel is
block-diagonal with g blocks under random channel permutations (as group-structured pruning
leaves it). It is compiled twice with the host preset's build pipeline: with
``DenseToGroupedConv`` disabled (the dense conv multiplies the zeros) and enabled (a grouped
conv plus the channel permutations it could not fold; here the input is the model input and the
output the model output, so both stay as ``take``). A third build gives the host preset
``conv_groups`` allowing dense and depthwise only, so ``RegroupConv`` turns the grouped conv
into ``g`` dense convs on channel slices + concat (its cost model's choice for these shapes).
The packages are run alternately on the same input (median of ``--repeat`` rounds) and their
outputs compared; ratios are against the dense latency.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

import tvm_prune
from tvm_prune.target import resolve_target
from tvm_prune.target.presets import ConvGroupSupport
from tvm_prune.testing import models
from tvm_prune.testing.ort import relative_error

SIZE = 56


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--channels", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--repeat", type=int, default=20, help="timed rounds per package")
    args = parser.parse_args()
    host = resolve_target("host")
    split_host = replace(host, conv_groups=ConvGroupSupport(("dense", "depthwise")))
    print(
        "| C | g | MACs dense | MACs grouped | dense ms | grouped ms | split ms "
        "| grouped/dense | split/dense | max rel err |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
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
                grouped = tvm_prune.compile(path, target=host, output=Path(tmp) / "g.tar")
                split = tvm_prune.compile(path, target=split_host, output=Path(tmp) / "s.tar")
                report = {t["name"]: t["report"] for t in grouped.metadata.transforms}
                (entry,) = report["DenseToGroupedConv"]["rewrites"]
                assert entry["rewritten"] and entry["groups"] == groups, entry
                x = {"x": np.random.default_rng(0).standard_normal((1, channels, SIZE, SIZE))}
                x["x"] = x["x"].astype(np.float32)
                (dense_ms, grouped_ms, split_ms), error = _alternating(
                    [dense, grouped, split], x, args.repeat
                )
                print(
                    f"| {channels} | {groups} | {entry['macs_before'] / 1e6:.1f} M | "
                    f"{entry['macs_after'] / 1e6:.1f} M | {dense_ms:.2f} | {grouped_ms:.2f} | "
                    f"{split_ms:.2f} | {grouped_ms / dense_ms:.2f} | {split_ms / dense_ms:.2f} | "
                    f"{error:.1e} |",
                    flush=True,
                )


def _alternating(packages, inputs, repeat: int) -> tuple[list[float], float]:
    """Median ms of each package, run in turn each round, and the largest relative error of
    the others' outputs against the first's."""
    runners = [package.runner() for package in packages]
    outputs = [next(iter(runner.run(inputs).values())) for runner in runners]
    error = max(relative_error(out, outputs[0]) for out in outputs[1:])
    times = [[] for _ in runners]
    for _ in range(repeat):
        for store, runner in zip(times, runners, strict=True):
            start = time.perf_counter()
            runner.run(inputs)
            store.append(time.perf_counter() - start)
    return [float(np.median(store)) * 1e3 for store in times], error


if __name__ == "__main__":
    main()
