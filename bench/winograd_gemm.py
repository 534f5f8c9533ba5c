"""The Winograd GEMM with its weights in row order against panels, out of cache, single kernels.

    TVM_NUM_THREADS=1 python bench/winograd_gemm.py [--repeat 8] [--copies 8]

Shapes: ResNet-18-shaped's Winograd GEMMs under F(4x4) (``alpha^2 = 36`` GEMMs of ``[K, C] x
[C, tiles]``: 64@56, 128@28, 256@14). Per shape, both layouts scheduled by the ``Matmul`` rule:
``rows`` (``U[e, k, c]``, what ``R.matmul`` gives) and ``panels`` (``U[e, k / 4, c, k % 4]``,
what ``WinogradConv2d`` stores). In a model, each conv's transformed weights are read once and
are out of cache by then, so every call here reads the next of ``--copies`` weight arrays (8 x
9.4 MB for 256@14, more than the L3); a round times each copy once, the median call of a round
is kept and the best round shown, layouts in alternation. ``GFLOP/s`` counts ``2 K C tiles``
per GEMM; ``err``: max |panels - numpy| / max |numpy|.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import tvm
from timing import print_table
from tvm import te

from tvm_prune.schedule.cpu.matmul import Matmul
from tvm_prune.target import resolve_target
from tvm_prune.transform.winograd_conv2d import WEIGHT_PANEL, _gemm

# (alpha^2, K, C, tiles) as WinogradConv2d emits them for ResNet-18-shaped at 224
SHAPES = [(36, 64, 64, 224), (36, 128, 128, 64), (36, 256, 256, 16)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=8, help="rounds")
    parser.add_argument("--copies", type=int, default=8, help="weight arrays cycled through")
    args = parser.parse_args()
    target = resolve_target("host").target
    rng = np.random.default_rng(0)
    rows = []
    for batch, out_channels, channels, tiles in SHAPES:
        weights = [
            rng.standard_normal((batch, out_channels, channels)).astype(np.float32)
            for _ in range(args.copies)
        ]
        v = rng.standard_normal((batch, channels, tiles)).astype(np.float32)
        panels = [
            np.ascontiguousarray(w.reshape(batch, -1, WEIGHT_PANEL, channels).transpose(0, 1, 3, 2))
            for w in weights
        ]
        layouts = {
            "rows": (_build_rows(batch, out_channels, channels, tiles, target), weights),
            "panels": (_build_panels(panels[0].shape, v.shape, target), panels),
        }
        v_tvm = tvm.runtime.tensor(v)
        out = tvm.runtime.tensor(np.zeros((batch, out_channels, tiles), np.float32))
        best = {label: float("inf") for label in layouts}
        args_of = {
            label: [tvm.runtime.tensor(w) for w in arrays] for label, (_, arrays) in layouts.items()
        }
        for _ in range(args.repeat):
            for label, (lib, _) in layouts.items():
                calls = []
                for u in args_of[label]:
                    start = time.perf_counter()
                    lib["main"](u, v_tvm, out)
                    calls.append(time.perf_counter() - start)
                best[label] = min(best[label], float(np.median(calls)) * 1e3)
        layouts["panels"][0]["main"](args_of["panels"][-1], v_tvm, out)
        expected = weights[-1] @ v
        error = np.abs(out.numpy() - expected).max() / np.abs(expected).max()
        gflop = 2 * batch * out_channels * channels * tiles / 1e9
        rows.append(
            [
                f"{batch} x [{out_channels}x{channels}] x [{channels}x{tiles}]",
                f"{best['rows']:.3f}",
                f"{gflop / best['rows'] * 1e3:.1f}",
                f"{best['panels']:.3f}",
                f"{gflop / best['panels'] * 1e3:.1f}",
                f"{best['rows'] / best['panels']:.2f}x",
                f"{error:.1e}",
            ]
        )
        print("done:", " | ".join(rows[-1]), flush=True)
    print("threads: TVM from TVM_NUM_THREADS; weights out of cache (see the docstring)")
    header = ["GEMMs", "rows ms", "GFLOP/s", "panels ms", "GFLOP/s", "rows/panels", "err"]
    print_table(header, rows)


def _build_rows(batch, out_channels, channels, tiles, target):
    u = te.placeholder((batch, out_channels, channels), name="U")
    v = te.placeholder((batch, channels, tiles), name="V")
    c = te.reduce_axis((0, channels), "c")
    m = te.compute(
        (batch, out_channels, tiles), lambda e, k, t: te.sum(u[e, k, c] * v[e, c, t], axis=c)
    )
    return _schedule([u, v, m], target)


def _build_panels(u_shape, v_shape, target):
    u = te.placeholder(u_shape, name="U")
    v = te.placeholder(v_shape, name="V")
    return _schedule([u, v, _gemm(u, v)], target)


def _schedule(tensors, target):
    func = te.create_prim_func(tensors).with_attr("global_symbol", "main")
    return tvm.compile(Matmul().apply(func, target, False).mod, target=target)


if __name__ == "__main__":
    main()
