"""Zero-tuning CPU schedules next to ONNX Runtime and TVM's default pipeline, in one run.

    python bench/cpu_schedules.py [--det-size 640] [--repeat 10] [--default-repeat 2] [--profile 8]
                                  [--tuned schedules/host]

Per model: median latency of ONNX Runtime (intra-op threads = cores), tvm-prune with TVM's
default schedules (``schedule_rules=False``: naive loops on CPU), tvm-prune with the
zero-tuning rules, and with the tuning records of ``--tuned`` applied where they match (the
rules elsewhere; "applied" counts the kernels records took), all on the same input and measured
in alternation so machine noise hits all of them (turns of at least 0.2 s, the first two runs
of each turn not counted).
Prints ratios to ORT, GFLOP/s (convolutions and matmuls counted from the ONNX graph, as direct
convolutions: Winograd convs multiply less, so a model of them can show more than 100 %)
and the fraction of FP32 peak (cores x FMA units x lanes x 2 x clock, from /proc/cpuinfo).
``--profile N`` prints the N slowest kernels of the rules build, each also re-run at once on warm
caches (``tvm_prune.testing.profile``).
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

import numpy as np
import onnx
from timing import alternating, print_table

import tvm_prune
from tvm_prune.testing import models, networks

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--det-size", type=int, default=640, help="PP-OCRv4 det side; 0 skips")
    parser.add_argument("--repeat", type=int, default=10, help="timed rounds (ORT, rules)")
    parser.add_argument("--default-repeat", type=int, default=2, help="rounds for TVM default")
    parser.add_argument("--profile", type=int, default=0, help="print the N slowest kernels")
    parser.add_argument("--only", default="", help="comma-separated model names to run")
    parser.add_argument(
        "--tuned",
        default=str(REPO / "schedules" / "host"),
        help="tuning-records folder for the tuned column (default: the shipped host records)",
    )
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        rows = []
        for name, path, shapes, inputs in cases(tmp, args.det_size):
            if args.only and name.split()[0] not in args.only.split(","):
                continue
            gflop = count_flops(path, shapes) / 1e9
            session = _ort_session(path)
            builds = {}
            for label, rules, records in (
                ("default", False, None),
                ("rules", True, None),
                ("tuned", True, args.tuned),
            ):
                package = tvm_prune.compile(
                    path,
                    input_shapes=shapes,
                    output=tmp / f"{label}.tar",
                    target="host",
                    schedule_rules=rules,
                    tuning_records=records,
                )
                builds[label] = package.runner()
                if label == "rules":
                    report = package.metadata.compile["schedule"]
                if records:
                    tuned = package.metadata.compile["tuning_records"]
            times = alternating(
                {
                    "ORT": lambda: session.run(None, inputs),
                    **{k: (lambda r=r: r.run(inputs)) for k, r in builds.items()},
                },
                {"default": args.default_repeat},
                args.repeat,
            )
            ort = times["ORT"]
            rows.append(
                (
                    name,
                    f"{gflop:.2f}",
                    f"{ort:.2f}",
                    f"{times['default']:.1f}",
                    f"{times['default'] / ort:.1f}x",
                    f"{times['rules']:.2f}",
                    f"{times['rules'] / ort:.2f}x",
                    f"{gflop / times['rules'] * 1e3:.1f}",
                    f"{100 * gflop / times['rules'] * 1e3 / peak_gflops():.0f}%",
                    f"{gflop / ort * 1e3:.1f}",
                    f"{times['tuned']:.2f}",
                    f"{times['tuned'] / ort:.2f}x",
                    f"{tuned['applied']}/{tuned['kernels']}",
                    str(report["fallback"]),
                )
            )
            print(f"done: {name} {report['scheduled']}", flush=True)
            if args.profile:
                _print_profile(path, shapes, inputs, args.profile)
    header = (
        "model",
        "GFLOP",
        "ORT ms",
        "default ms",
        "default/ORT",
        "rules ms",
        "rules/ORT",
        "rules GFLOP/s",
        "% peak",
        "ORT GFLOP/s",
        "tuned ms",
        "tuned/ORT",
        "applied",
        "fallback",
    )
    print(f"FP32 peak {peak_gflops():.0f} GFLOP/s ({os.cpu_count()} cores)")
    print_table(header, rows)


def cases(tmp: Path, det_size: int):
    """``(name, ONNX path, input shapes or None, inputs)`` of the benchmark models."""
    digits = REPO / "examples" / "digits" / "digits_cnn.onnx"
    with np.load(REPO / "examples" / "digits" / "digits_test.npz") as data:
        digit = data["input"][:1]
    rng = np.random.default_rng(0)
    image = rng.standard_normal((1, 3, 224, 224)).astype(np.float32)
    yield "digits CNN", digits, None, {"input": digit}
    yield (
        "resnet18-shaped 224",
        models.save(networks.resnet18_like(), tmp / "r18.onnx"),
        None,
        {"x": image},
    )
    yield (
        "mobilenetv2-shaped 224",
        models.save(networks.mobilenet_v2_like(), tmp / "mv2.onnx"),
        None,
        {"x": image},
    )
    if det_size:
        yield (
            f"ppocr-det {det_size}",
            models.ppocr_det_model(),
            {"x": (1, 3, det_size, det_size)},
            {"x": models.document_image(det_size, det_size)},
        )


def count_flops(path: Path, shapes) -> float:
    """2 x multiply-adds of Conv, ConvTranspose, Gemm and MatMul nodes."""
    model = onnx.load(str(path))
    if shapes:
        for graph_input in model.graph.input:
            if graph_input.name in shapes:
                dims = graph_input.type.tensor_type.shape.dim
                for dim, value in zip(dims, shapes[graph_input.name], strict=True):
                    dim.ClearField("dim_param")
                    dim.dim_value = value
    model = onnx.shape_inference.infer_shapes(model)
    known = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in [*model.graph.value_info, *model.graph.input, *model.graph.output]
    }
    for init in model.graph.initializer:
        known[init.name] = list(init.dims)
    for node in model.graph.node:
        if node.op_type == "Constant":
            known[node.output[0]] = list(node.attribute[0].t.dims)
    total = 0.0
    for node in model.graph.node:
        out = known.get(node.output[0])
        if node.op_type == "Conv" and out:
            w = known[node.input[1]]
            total += 2 * np.prod(out) * np.prod(w[1:])
        elif node.op_type == "ConvTranspose" and out:
            w, x = known[node.input[1]], known[node.input[0]]
            total += 2 * np.prod(x) * np.prod(w[1:])
        elif node.op_type in ("Gemm", "MatMul") and out:
            a = known[node.input[0]]
            k = a[0] if node.op_type == "Gemm" and _attr(node, "transA") else a[-1]
            total += 2 * np.prod(out) * k
    return float(total)


def _attr(node, name):
    return next((a.i for a in node.attribute if a.name == name), 0)


def peak_gflops() -> float:
    """cores x 2 FMA units x lanes x 2 flops x GHz, at the vector width the rules tile for (8
    fp32 lanes on x86, AVX-512 included: Zen 4's two FMA units are 256 bits wide)."""
    from tvm_prune.schedule.cpu import cpu_params
    from tvm_prune.target import resolve_target

    mhz = 0.0
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("cpu MHz"):
                mhz = max(mhz, float(line.split(":")[1]))
    lanes = cpu_params(resolve_target("host").target).lanes("float32")
    return (os.cpu_count() or 1) * 2 * lanes * 2 * mhz / 1e3


def _ort_session(path: Path):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = os.cpu_count() or 1
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def rules_executable(path, shapes, inputs):
    """The host build ``compile`` makes of the model (with the preset's graph rewrites), as a
    Relax executable to profile, and its inputs as tensors."""
    import tvm

    from tvm_prune.package.build import rewritten_module
    from tvm_prune.pipeline import build_pipeline
    from tvm_prune.target import resolve_target

    model = tvm_prune.load_onnx(path, input_shapes=shapes)
    preset = resolve_target("host")
    with preset.target:
        mod, _ = rewritten_module(model, preset)
        executable = tvm.compile(mod, target=preset.target, relax_pipeline=build_pipeline(preset))
    return executable, [tvm.runtime.tensor(inputs[spec.name]) for spec in model.inputs]


def _print_profile(path, shapes, inputs, count: int) -> None:
    from tvm_prune.testing.profile import profile_kernels

    rows = profile_kernels(*rules_executable(path, shapes, inputs))
    total = sum(row.ms for row in rows)
    for row in rows[:count]:
        print(
            f"  {row.ms:8.2f} ms {100 * row.ms / total:5.1f}%  re-run {row.rerun_ms:6.2f} ms"
            f"  x{row.calls:<3d} {row.name}"
        )
    rerun = sum(row.rerun_ms for row in rows)
    print(f"  total {total:.2f} ms in kernels, {rerun:.2f} ms re-run on warm caches")


if __name__ == "__main__":
    main()
