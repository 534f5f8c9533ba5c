"""Hexagon HVX kernels from the CPU rule family, built without the Hexagon SDK.

Integer kernels run under ``qemu-hexagon`` (v67 with HVX) and must be bit-exact against numpy.
Float kernels use HVX qf32 instructions, which Debian's qemu 7.2 cannot execute: their assembly is
checked for HVX instructions and the same scheduled TIR, built for this machine, must equal numpy
(tolerance 1e-5 relative).
"""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import tvm
from tvm import te, topi

import tvm_prune
from tvm_prune.errors import RunError
from tvm_prune.package.hexagon import build_kernels, hvx_instruction_counts
from tvm_prune.schedule import ApplyScheduleRules, rules_for
from tvm_prune.target import resolve_target
from tvm_prune.testing.hexagon import run_kernel
from tvm_prune.testing.ort import relative_error

from ..conftest import DIGITS

pytestmark = pytest.mark.skipif(
    not (shutil.which("clang-22") and shutil.which("ld.lld-22")),
    reason="needs Debian's clang-22 and lld-22 (scripts/setup installs them)",
)

PRESET = resolve_target("hexagon-v68")
RNG = np.random.default_rng(0)


def _scheduled(tensors, name: str) -> tuple[tvm.IRModule, dict]:
    report: dict = {}
    with PRESET.target:
        mod = ApplyScheduleRules(rules_for(PRESET), report)(
            tvm.IRModule({name: te.create_prim_func(tensors)})
        )
    return mod, report


def _int8(shape) -> np.ndarray:
    return RNG.integers(-128, 128, shape, dtype=np.int8)


def _conv_reference(x: np.ndarray, w: np.ndarray, groups: int) -> np.ndarray:
    """NCHW conv, stride 1, padding 1, in int64 (integers) or float64."""
    wide = np.int64 if np.issubdtype(x.dtype, np.integer) else np.float64
    n, _, h, width = x.shape
    o, c_per_group, kh, kw = w.shape
    xp = np.pad(x.astype(wide), ((0, 0), (0, 0), (1, 1), (1, 1)))
    out = np.zeros((n, o, h, width), wide)
    per_group = o // groups
    for g in range(groups):
        xs = xp[:, g * c_per_group : (g + 1) * c_per_group]
        ws = w[g * per_group : (g + 1) * per_group].astype(wide)
        for i in range(kh):
            for j in range(kw):
                out[:, g * per_group : (g + 1) * per_group] += np.einsum(
                    "nchw,oc->nohw", xs[:, :, i : i + h, j : j + width], ws[:, :, i, j]
                )
    return out


def test_int8_add_runs_bit_exact_with_hvx():
    a, b = te.placeholder((4096,), "int8", name="a"), te.placeholder((4096,), "int8", name="b")
    mod, report = _scheduled([a, b, te.compute((4096,), lambda i: a[i] + b[i])], "add")
    assert report["scheduled"] == {"Injective": 1}
    kernels = build_kernels(mod, PRESET.target)
    assert "vadd(" in kernels.assembly and ".b" in kernels.assembly
    x, y = _int8(4096), _int8(4096)
    (out,) = run_kernel(kernels, "add", [x, y], [((4096,), "int8")])
    np.testing.assert_array_equal(out, x + y)  # int8 wraps in both


@pytest.mark.parametrize("groups", [1, 32], ids=["dense", "depthwise"])
def test_int8_conv2d_runs_bit_exact_with_hvx(groups):
    channels, shape = 32, (1, 32, 4, 64)  # 64 columns: whole HVX vectors for the depthwise rows
    x = te.placeholder(shape, "int8", name="x")
    w = te.placeholder((channels, channels // groups, 3, 3), "int8", name="w")
    y = topi.nn.group_conv2d_nchw(x, w, 1, 1, 1, groups, out_dtype="int32")
    mod, report = _scheduled([x, w, y], "conv")
    assert report["fallback"] == 0, report
    kernels = build_kernels(mod, PRESET.target)
    assert hvx_instruction_counts(kernels.assembly)["hvx"] > 0
    data, weight = _int8(shape), _int8((channels, channels // groups, 3, 3))
    (out,) = run_kernel(kernels, "conv", [data, weight], [(shape, "int32")])
    np.testing.assert_array_equal(out, _conv_reference(data, weight, groups))


@pytest.mark.parametrize(
    ("data_dtype", "rule", "instruction"),
    [("int8", "Matmul", "vmpy"), ("uint8", "VrmpyDense", "vrmpy(")],
    ids=["int8-cpu-rule", "uint8-vrmpy"],
)
def test_dense_runs_bit_exact_with_hvx(data_dtype, rule, instruction):
    """int8 x int8 goes to the CPU Matmul rule; uint8 x int8 to vrmpy (32 x 4 products)."""
    a = te.placeholder((8, 256), data_dtype, name="a")
    b = te.placeholder((64, 256), "int8", name="b")
    k = te.reduce_axis((0, 256), name="k")
    c = te.compute(
        (8, 64), lambda i, j: te.sum(a[i, k].astype("int32") * b[j, k].astype("int32"), axis=k)
    )
    mod, report = _scheduled([a, b, c], "dense")
    assert report["scheduled"] == {rule: 1}, report
    kernels = build_kernels(mod, PRESET.target)
    assert instruction in kernels.assembly
    info = np.iinfo(data_dtype)
    x = RNG.integers(info.min, info.max + 1, (8, 256), dtype=data_dtype)
    w = _int8((64, 256))
    (out,) = run_kernel(kernels, "dense", [x, w], [((8, 64), "int32")])
    np.testing.assert_array_equal(out, x.astype(np.int64) @ w.astype(np.int64).T)


def test_emulation_catches_a_wrong_call():
    """Negative controls: swapped operands of a subtraction give a different result, and a
    tensor of the wrong shape is refused by the kernel's own argument checks."""
    a, b = te.placeholder((256,), "int8", name="a"), te.placeholder((256,), "int8", name="b")
    mod, _ = _scheduled([a, b, te.compute((256,), lambda i: a[i] - b[i])], "sub")
    kernels = build_kernels(mod, PRESET.target)
    x, y = _int8(256), _int8(256)
    (swapped,) = run_kernel(kernels, "sub", [y, x], [((256,), "int8")])
    assert not np.array_equal(swapped, x - y)
    with pytest.raises(RunError, match="shape"):
        run_kernel(kernels, "sub", [x[:128], y[:128]], [((128,), "int8")])


def test_float_conv2d_uses_hvx_qf32_and_its_schedule_is_exact_on_the_host():
    x = te.placeholder((1, 16, 14, 14), "float32", name="x")
    w = te.placeholder((32, 16, 3, 3), "float32", name="w")
    mod, report = _scheduled([x, w, topi.nn.conv2d_nchw(x, w, 1, 1, 1)], "conv")
    assert report["scheduled"] == {"Conv2d": 1}, report
    assembly = build_kernels(mod, PRESET.target).assembly
    assert ".qf32" in assembly and "vmpy(" in assembly
    host = tvm.compile(
        tvm.IRModule({"conv": mod["conv"].with_attr("global_symbol", "conv")}),
        target=resolve_target("host").target,
    )
    data = RNG.standard_normal((1, 16, 14, 14)).astype(np.float32)
    weight = RNG.standard_normal((32, 16, 3, 3)).astype(np.float32)
    out = tvm.runtime.tensor(np.zeros((1, 32, 14, 14), np.float32))
    host["conv"](tvm.runtime.tensor(data), tvm.runtime.tensor(weight), out)
    reference = _conv_reference(data, weight, 1)
    assert relative_error(out.numpy(), reference) <= 1e-5


def test_compile_for_hexagon_writes_a_hexagon_library(tmp_path):
    package = tvm_prune.compile(
        DIGITS / "digits_cnn.onnx", target="hexagon-v68", output=tmp_path / "d.tar"
    )
    library = package.members["mod.so"]
    assert library[:4] == b"\x7fELF" and int.from_bytes(library[18:20], "little") == 164
    report = package.metadata.compile["schedule"]
    assert report["fallback"] == 0 or report["fallback_funcs"] == ["mean"]
    assert report["hexagon"]["instructions"]["hvx"] > 0
    for name in report["hexagon"]["kernels"]:
        assert f"__tvm_ffi_{name}".encode() in library
    with pytest.raises(tvm_prune.errors.RunError, match="cannot run"):
        package.run({"input": np.zeros((1, 1, 8, 8), np.float32)})
