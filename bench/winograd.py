"""Winograd against the direct conv rule and ONNX Runtime, per 3x3 stride-1 conv shape, in one run.

    TVM_NUM_THREADS=1 python bench/winograd.py [--threads 1] [--repeat 20] [--det-size 640]
    python bench/winograd.py --models [--threads 2] [--repeat 10] [--det-size 640]

Shapes: ResNet-18's 3x3 stride-1 layers (64@56, 128@28, 256@14, 512@7) and the dense 3x3
stride-1 convs of PP-OCRv4 det at ``--det-size`` (read from the model), each as
conv + bias + ReLU. Per shape: median ms of ORT (``intra_op_num_threads = --threads``; set
``TVM_NUM_THREADS`` to the same), our direct conv rule, and ``WinogradConv2d`` with F(4x4) and
with F(2x2) (each where the tile divides the output), measured in alternation; ``err`` is
max |ours - ORT| / max |ORT| on a normal(0, 1) input. The fastest of
the three TVM columns per shape is what the presets' ``winograd`` entry (tiles, min_channels)
is read from.

``--models``: whole ResNet-18-shaped (224) and PP-OCRv4 det models compiled for the host preset
as ``compile`` does, with its ``winograd`` policy and with ``WinogradConv2d`` disabled, timed in
alternation with ORT; ``err`` against ORT, and how many convs became Winograd.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import onnx
import tvm
from timing import alternating, print_table
from tvm import relax

from tvm_prune.frontend import load_onnx
from tvm_prune.pipeline import build_pipeline
from tvm_prune.target import resolve_target
from tvm_prune.testing import models, networks
from tvm_prune.testing.ort import relative_error
from tvm_prune.transform import WinogradConv2d

RESNET18 = [(64, 64, 56), (128, 128, 28), (256, 256, 14), (512, 512, 7)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1, help="ORT intra-op threads")
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--det-size", type=int, default=640, help="PP-OCRv4 det side; 0 skips")
    parser.add_argument("--models", action="store_true", help="whole models, not single convs")
    args = parser.parse_args()
    if args.models:
        _whole_models(args)
        return
    cases = [("resnet18", c_in, c_out, size, size) for c_in, c_out, size in RESNET18]
    if args.det_size:
        cases += [("ppocr-det", *shape) for shape in _det_convs(args.det_size)]
    preset = resolve_target("host")
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for source, c_in, c_out, height, width in cases:
            x_shape = (1, c_in, height, width)
            path = models.save(
                networks.single_op("Conv", x_shape, weight=(c_out, c_in, 3, 3), pads=[1] * 4),
                Path(tmp) / "conv.onnx",
            )
            x = np.random.default_rng(0).standard_normal(x_shape).astype(np.float32)
            session = _ort_session(path, args.threads)
            (reference,) = session.run(None, {"x": x})
            runs, errors = {"ORT": lambda s=session: s.run(None, {"x": x})}, {}
            for label, rewrite in (
                ("direct", None),
                ("F4", WinogradConv2d(tiles=(4,))),
                ("F2", WinogradConv2d(tiles=(2,))),
            ):
                run, report = _build(path, rewrite, preset)
                if report is not None:
                    if not report[0]["rewritten"]:
                        continue
                runs[label] = lambda r=run: r(x)
                errors[label] = relative_error(run(x), reference)
            times = alternating(runs, {}, args.repeat)
            direct = times["direct"]
            row = [source, f"{c_in}->{c_out} {height}x{width}", f"{times['ORT']:.2f}"]
            row.append(f"{direct:.2f}")
            for label in ("F4", "F2"):
                if label in times:
                    row += [
                        f"{times[label]:.2f}",
                        f"{direct / times[label]:.2f}x",
                        f"{errors[label]:.1e}",
                    ]
                else:
                    row += ["-", "-", "-"]
            best = min(times[k] for k in times if k != "ORT")
            row.append(f"{best / times['ORT']:.2f}x")
            rows.append(row)
            print("done:", " | ".join(row), flush=True)
    header = [
        "model",
        "conv",
        "ORT ms",
        "direct ms",
        "F4 ms",
        "direct/F4",
        "F4 err",
        "F2 ms",
        "direct/F2",
        "F2 err",
        "best/ORT",
    ]
    print(f"threads: ORT {args.threads}; TVM from TVM_NUM_THREADS")
    print_table(header, rows)


def _whole_models(args) -> None:
    import tvm_prune

    rng = np.random.default_rng(0)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        cases = [
            (
                "resnet18-shaped 224",
                models.save(networks.resnet18_like(), Path(tmp) / "r18.onnx"),
                None,
                {"x": rng.standard_normal((1, 3, 224, 224)).astype(np.float32)},
            )
        ]
        if args.det_size:
            side = args.det_size
            image = models.document_image(side, side)
            cases.append(
                (f"ppocr-det {side}", models.ppocr_det_model(), {"x": image.shape}, {"x": image})
            )
        for name, path, shapes, inputs in cases:
            session = _ort_session(path, args.threads)
            reference = session.run(None, inputs)[0]
            runs, errors, rewritten = {"ORT": lambda s=session: s.run(None, inputs)}, {}, 0
            for label, disabled in (("direct", ["WinogradConv2d"]), ("winograd", [])):
                package = tvm_prune.compile(
                    path,
                    input_shapes=shapes,
                    output=Path(tmp) / f"{label}.tar",
                    target="host",
                    disabled_passes=disabled,
                )
                runner = package.runner()
                runs[label] = lambda r=runner: r.run(inputs)
                errors[label] = relative_error(next(iter(runner.run(inputs).values())), reference)
                for transform in package.metadata.transforms:
                    if transform["name"] == "WinogradConv2d":
                        entries = transform["report"]["rewrites"]
                        rewritten = sum(bool(e.get("rewritten")) for e in entries)
            times = alternating(runs, {}, args.repeat)
            rows.append(
                [
                    name,
                    str(rewritten),
                    f"{times['ORT']:.2f}",
                    f"{times['direct']:.2f}",
                    f"{times['winograd']:.2f}",
                    f"{times['direct'] / times['winograd']:.2f}x",
                    f"{times['winograd'] / times['ORT']:.2f}x",
                    f"{errors['direct']:.1e}",
                    f"{errors['winograd']:.1e}",
                ]
            )
            print("done:", " | ".join(rows[-1]), flush=True)
    header = [
        "model",
        "winograd convs",
        "ORT ms",
        "direct ms",
        "winograd ms",
        "direct/winograd",
        "winograd/ORT",
        "direct err",
        "winograd err",
    ]
    print(f"threads: ORT {args.threads}; TVM from TVM_NUM_THREADS (default: all cores)")
    print_table(header, rows)


def _det_convs(size: int) -> list[tuple[int, int, int, int]]:
    """(C_in, C_out, H, W) of PP-OCRv4 det's dense 3x3 stride-1 convs, each shape once."""
    model = onnx.load(str(models.ppocr_det_model()))
    dims = model.graph.input[0].type.tensor_type.shape.dim
    for dim, value in zip(dims, (1, 3, size, size), strict=True):
        dim.ClearField("dim_param")
        dim.dim_value = value
    model = onnx.shape_inference.infer_shapes(model)
    shapes = {
        vi.name: [d.dim_value for d in vi.type.tensor_type.shape.dim]
        for vi in [*model.graph.value_info, *model.graph.input]
    }
    weights = {init.name: list(init.dims) for init in model.graph.initializer}
    weights.update(
        {
            n.output[0]: list(n.attribute[0].t.dims)
            for n in model.graph.node
            if n.op_type == "Constant"
        }
    )
    found = []
    for node in model.graph.node:
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        weight = weights.get(node.input[1]) if node.op_type == "Conv" else None
        if (
            weight is None
            or weight[2:] != [3, 3]
            or attrs.get("group", 1) != 1
            or list(attrs.get("strides", [1, 1])) != [1, 1]
        ):
            continue
        _, _, height, width = shapes[node.output[0]]
        shape = (weight[1], weight[0], height, width)
        if shape not in found:
            found.append(shape)
    return found


def _build(path: Path, rewrite, preset):
    """A callable running the conv built with our rules after ``rewrite`` (None: none), and the
    rewrite's report."""
    model = load_onnx(path)
    mod = model.bound_module() if rewrite is None else rewrite(model.bound_module())
    with preset.target:
        executable = tvm.compile(mod, target=preset.target, relax_pipeline=build_pipeline(preset))
    main = relax.VirtualMachine(executable, tvm.cpu())["main"]
    return (lambda x: main(tvm.runtime.tensor(x)).numpy()), (
        None if rewrite is None else rewrite.report
    )


def _ort_session(path: Path, threads: int):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


if __name__ == "__main__":
    main()
