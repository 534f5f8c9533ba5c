"""Run one Hexagon kernel under ``qemu-hexagon`` and read its outputs back.

The kernel's assembly (``tvm_prune.package.hexagon.build_kernels``) is linked with the
freestanding harness in ``cross_compile/hexagon/harness.c`` and a generated ``case.h`` holding
the input tensors as data; qemu runs the static executable and the harness writes the outputs'
bytes to stdout. Debian's qemu 7.2 emulates Hexagon v67 with HVX integer instructions, so int8
and int32 kernels run; float HVX (qf16/qf32) aborts it, so float kernels are only inspected.
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from collections.abc import Sequence
from importlib import resources
from pathlib import Path

import numpy as np
import tvm_ffi

from ..errors import RunError
from ..package.hexagon import CLANG, LLD, HexagonKernels, find_tool, run_tool

QEMU_CPU = "v67"
ALIGNMENT = 128  # bytes: an HVX vector
_DLPACK_CODES = {"i": 0, "u": 1, "f": 2}


def qemu_hexagon() -> str:
    """``qemu-hexagon`` on PATH, or Debian's static build extracted once into the cache."""
    for name in ("qemu-hexagon", "qemu-hexagon-static"):
        if path := shutil.which(name):
            return path
    script = resources.files("tvm_prune.data") / "cross_compile" / "qemu-user-static.sh"
    result = subprocess.run(["bash", str(script)], capture_output=True, text=True)
    if result.returncode:
        raise RunError(f"could not extract qemu-user-static: {result.stderr.strip()[-200:]}")
    return str(Path(result.stdout.strip().splitlines()[-1]) / "qemu-hexagon-static")


def run_kernel(
    kernels: HexagonKernels,
    name: str,
    inputs: Sequence[np.ndarray],
    outputs: Sequence[tuple[tuple[int, ...], str]],
    *,
    timeout: float = 120,
) -> list[np.ndarray]:
    """Call kernel ``name`` with ``inputs`` then ``outputs`` (shape, dtype) as its arguments,
    on the emulated DSP; the output arrays it wrote."""
    harness = resources.files("tvm_prune.data") / "cross_compile" / "hexagon" / "harness.c"
    include = Path(tvm_ffi.__file__).parent / "include"
    with tempfile.TemporaryDirectory(prefix="tvm-prune-hexagon-") as tmp:
        tmp = Path(tmp)
        (tmp / "case.h").write_text(_case_header(name, inputs, outputs))
        clang = find_tool(CLANG)
        run_tool(
            [
                clang,
                "--target=hexagon",
                f"-mcpu={kernels.mcpu}",
                "-O2",
                "-ffreestanding",
                "-fno-builtin",
                f"-I{include}",
                f"-I{tmp}",
                "-c",
                str(harness),
                "-o",
                str(tmp / "harness.o"),
            ]
        )
        objects = kernels.object_file(tmp / "kernels.o")
        run_tool(
            [
                find_tool(LLD),
                "-m",
                "hexagonelf",
                "-static",
                "-e",
                "_start",
                str(tmp / "harness.o"),
                str(objects),
                "-o",
                str(tmp / "case.elf"),
            ]
        )
        result = subprocess.run(
            [qemu_hexagon(), "-cpu", QEMU_CPU, str(tmp / "case.elf")],
            capture_output=True,
            timeout=timeout,
        )
    if result.returncode:
        message = result.stderr.decode(errors="replace").strip() or f"exit code {result.returncode}"
        raise RunError(f"kernel {name} under qemu-hexagon: {message.splitlines()[0]}")
    arrays, offset = [], 0
    for shape, dtype in outputs:
        size = int(np.prod(shape)) * np.dtype(dtype).itemsize
        arrays.append(np.frombuffer(result.stdout[offset : offset + size], dtype).reshape(shape))
        offset += size
    if offset != len(result.stdout):
        raise RunError(f"kernel {name}: {len(result.stdout)} output bytes, expected {offset}")
    return arrays


def _case_header(
    name: str, inputs: Sequence[np.ndarray], outputs: Sequence[tuple[tuple[int, ...], str]]
) -> str:
    arrays = [(np.ascontiguousarray(a), False) for a in inputs]
    arrays += [(np.zeros(shape, dtype), True) for shape, dtype in outputs]
    lines = [f"#define KERNEL __tvm_ffi_{name}"]
    entries = []
    for i, (array, is_output) in enumerate(arrays):
        data = ", ".join(str(b) for b in array.tobytes()) or "0"
        lines.append(
            f"static unsigned char data{i}[{max(array.nbytes, 1)}] "
            f"__attribute__((aligned({ALIGNMENT}))) = {{{data}}};"
        )
        shape = ", ".join(str(d) for d in array.shape) or "1"
        lines.append(f"static int64_t shape{i}[] = {{{shape}}};")
        dtype = array.dtype
        entries.append(
            f"{{data{i}, {array.ndim}, shape{i}, {_DLPACK_CODES[dtype.kind]}, "
            f"{dtype.itemsize * 8}, {array.nbytes}, {int(is_output)}}}"
        )
    lines.append(f"static const struct Arg ARGS[] = {{{', '.join(entries)}}};")
    return "\n".join(lines) + "\n"
