"""Layer by layer inside the whole model: ONNX Runtime's per-node times next to our per-kernel ones.

    TVM_NUM_THREADS=1 python bench/layer_profile.py [--only mobilenetv2-shaped] [--rounds 20]

One-conv benchmarks (``conv_kernels.py``) put each conv in a model of its own. There ORT also
converts the input to its blocked NCHWc layout and back and pays a session run per conv, which
hides how fast its conv kernels are inside a model, where the layout is converted once.
Here both run the whole model: ORT's profiler (``enable_profiling``) times each node and the VM
instrument (``tvm_prune.testing.profile``) each kernel. Rows group the nodes and kernels by the
shape they write (a 1x1 expansion and the depthwise conv after it share one), slowest first.
Both profilers add a few microseconds per call, so compare the rows with each other, and the
totals with ``cpu_schedules.py``'s whole-model times.

The re-run columns time each of our kernel calls again at once on the same arguments, with its
weights, input and output in cache (``profile_kernels``). Where a kernel's re-run time is ORT's
in-model time but its in-model time is not, the time goes to data the model leaves cold, not to
the kernel's code (MobileNetV2-shaped on one thread, Zen 4: the 7 x 7 layers' 1x1 convs, whose
weights are 0.6-1.6 MB each).

``TVM_NUM_THREADS`` sets both sides' threads (ORT's intra-op threads too); unset, both use
every core. Compare kernels on one thread: with two, every profiled kernel of ours also pays
waking the pool's sleeping worker (the hook's Python time between kernels lets it fall asleep),
which the unprofiled model does not (MobileNetV2-shaped: 11.2 ms profiled, 8-10 ms run).
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections import defaultdict
from pathlib import Path

import numpy as np
from cpu_schedules import cases, rules_executable
from timing import print_table

from tvm_prune.testing.profile import profile_kernels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default="mobilenetv2-shaped", help="comma-separated models")
    parser.add_argument("--det-size", type=int, default=640, help="PP-OCRv4 det side")
    parser.add_argument("--rounds", type=int, default=20, help="profiled runs of each side")
    args = parser.parse_args()
    threads = int(os.environ.get("TVM_NUM_THREADS", os.cpu_count() or 1))
    with tempfile.TemporaryDirectory() as tmp:
        for name, path, shapes, inputs in cases(Path(tmp), args.det_size):
            if name.split()[0] not in args.only.split(","):
                continue
            ort_ms = _ort_node_ms(path, inputs, threads, args.rounds, Path(tmp))
            tvm_ms: dict[tuple, float] = defaultdict(float)
            rerun_ms: dict[tuple, float] = defaultdict(float)
            for row in profile_kernels(*rules_executable(path, shapes, inputs), rounds=args.rounds):
                if row.name.startswith("vm.builtin"):
                    continue
                tvm_ms[row.output_shape] += row.ms
                rerun_ms[row.output_shape] += row.rerun_ms
            print(f"{name}, {threads} thread(s), ms per run")
            rows = []
            for shape in sorted(set(ort_ms) | set(tvm_ms), key=lambda s: -tvm_ms.get(s, 0)):
                ort = ort_ms.get(shape, 0.0)
                ours, rerun = tvm_ms.get(shape, 0.0), rerun_ms.get(shape, 0.0)
                rows.append(("x".join(map(str, shape)), *_cells(ort, ours, rerun, 3)))
            rows.append(
                (
                    "total",
                    *_cells(sum(ort_ms.values()), sum(tvm_ms.values()), sum(rerun_ms.values()), 2),
                )
            )
            print_table(
                (
                    "output shape",
                    "ORT ms",
                    "rules ms",
                    "rules/ORT",
                    "re-run ms",
                    "re-run/ORT",
                ),
                rows,
            )


def _cells(ort: float, ours: float, rerun: float, digits: int) -> tuple[str, ...]:
    def ratio(ms: float) -> str:
        return f"{ms / ort:.2f}x" if ort else "-"

    return (
        f"{ort:.{digits}f}",
        f"{ours:.{digits}f}",
        ratio(ours),
        f"{rerun:.{digits}f}",
        ratio(rerun),
    )


def _ort_node_ms(path, inputs, threads: int, rounds: int, tmp: Path) -> dict[tuple, float]:
    """Median ms per run of ORT's nodes, summed by output shape (layout reorders included)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.enable_profiling = True
    options.profile_file_prefix = str(tmp / "ort_profile")
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    warmup = 3
    for _ in range(warmup + rounds):
        session.run(None, inputs)
    events = json.loads(Path(session.end_profiling()).read_text())
    per_node: dict[str, list[float]] = defaultdict(list)
    shapes: dict[str, tuple] = {}
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_node[event["name"]].append(event["dur"] / 1e3)
            written = event["args"].get("output_type_shape") or [{}]
            shapes[event["name"]] = tuple(next(iter(written[0].values()), ()))
    totals: dict[tuple, float] = defaultdict(float)
    for node, times in per_node.items():
        totals[shapes[node]] += float(np.median(times[warmup:]))
    return totals


if __name__ == "__main__":
    main()
