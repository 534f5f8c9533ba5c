"""HVX instruction counts per kernel for the hexagon-v68 preset: our rules vs TVM's unscheduled
loops, from the assembly (no device timing exists here; qemu's timing means nothing).

    python bench/hexagon_hvx.py

"hvx" counts instructions that name a vector register or vmem, "scalar" the rest; both are
static counts in the kernel's code, not executed instructions.
"""

from __future__ import annotations

import tvm
from timing import print_table
from tvm import te, topi

from tvm_prune.package.hexagon import build_kernels, hvx_instruction_counts
from tvm_prune.schedule import ApplyScheduleRules, rules_for
from tvm_prune.target import resolve_target


def _kernels():
    x8 = te.placeholder((1, 32, 4, 64), "int8", name="x")
    yield "int8 add 4096", _add()
    w8 = te.placeholder((32, 32, 3, 3), "int8", name="w")
    yield (
        "int8 conv3x3 32ch 4x64",
        [x8, w8, topi.nn.conv2d_nchw(x8, w8, 1, 1, 1, out_dtype="int32")],
    )
    wd = te.placeholder((32, 1, 3, 3), "int8", name="w")
    yield (
        "int8 depthwise3x3 32ch",
        [
            x8,
            wd,
            topi.nn.group_conv2d_nchw(x8, wd, 1, 1, 1, 32, out_dtype="int32"),
        ],
    )
    a = te.placeholder((8, 256), "int8", name="a")
    b = te.placeholder((64, 256), "int8", name="b")
    k = te.reduce_axis((0, 256), name="k")
    yield (
        "int8 dense 8x256x64",
        [
            a,
            b,
            te.compute(
                (8, 64),
                lambda i, j: te.sum(a[i, k].astype("int32") * b[j, k].astype("int32"), axis=k),
            ),
        ],
    )
    u = te.placeholder((8, 256), "uint8", name="a")
    yield (
        "uint8 x int8 dense 8x256x64 (vrmpy)",
        [
            u,
            b,
            te.compute(
                (8, 64),
                lambda i, j: te.sum(u[i, k].astype("int32") * b[j, k].astype("int32"), axis=k),
            ),
        ],
    )
    xf = te.placeholder((1, 16, 14, 14), "float32", name="x")
    wf = te.placeholder((32, 16, 3, 3), "float32", name="w")
    yield "f32 conv3x3 16->32ch 14x14", [xf, wf, topi.nn.conv2d_nchw(xf, wf, 1, 1, 1)]


def _add():
    a, b = te.placeholder((4096,), "int8", name="a"), te.placeholder((4096,), "int8", name="b")
    return [a, b, te.compute((4096,), lambda i: a[i] + b[i])]


def main() -> None:
    preset = resolve_target("hexagon-v68")
    rows = []
    for name, tensors in _kernels():
        func = te.create_prim_func(tensors)
        plain = hvx_instruction_counts(
            build_kernels(tvm.IRModule({"kernel": func}), preset.target).assembly
        )
        with preset.target:
            scheduled = ApplyScheduleRules(rules_for(preset))(tvm.IRModule({"kernel": func}))
        ours = hvx_instruction_counts(build_kernels(scheduled, preset.target).assembly)
        rows.append((name, plain["hvx"], plain["scalar"], ours["hvx"], ours["scalar"]))
        print(f"done: {name}", flush=True)
    header = ("kernel", "TVM loops: hvx", "scalar", "our rules: hvx", "scalar")
    print_table(header, rows)


if __name__ == "__main__":
    main()
