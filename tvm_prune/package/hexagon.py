"""Hexagon kernels without the Hexagon SDK: TVM's own LLVM codegen, then Debian's clang and lld.

``tvm.compile`` cannot build for a Hexagon target here: with no host it builds x86 code, and
with the Hexagon target as its own host the packed-call lowering of the host pipeline is never
run (``unknown intrinsic tirx.tvm_call_packed``). So :func:`build_kernels` does by hand what
``tvm.tirx.build`` would: bind the target (host = itself), run the default TIR pipeline, take
the functions it split off, run the *host* finalisation on them (they are host code on the DSP:
it lowers the packed calls), and call ``target.build.hexagon``. Its assembly is what we keep:
it shows the HVX instructions, and ``clang-22 --target=hexagon`` assembles it into an object
that ``ld.lld-22 -m hexagonelf`` links into a shared object (:func:`link_shared`) or, with a
freestanding harness, into an executable for ``qemu-hexagon`` (``tvm_prune.testing.hexagon``).

Each kernel ``name`` is exported as ``__tvm_ffi_<name>`` with TVM's packed-call ABI; it checks
its tensors' shapes, dtypes and device type (``kDLHexagon``) and calls ``__tvm_set_device``
through the function-pointer globals a TVM runtime fills in when it loads the module.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import tvm
import tvm_ffi
from tvm import relax
from tvm.tirx.build import split_host_device_mods

from ..errors import CompileError

CLANG = "clang-22"
LLD = "ld.lld-22"


@dataclass(frozen=True)
class HexagonKernels:
    """The kernels of one build: ``assembly`` (text for ``clang --target=hexagon``) and the
    ``names`` of the exported kernels (``__tvm_ffi_<name>``)."""

    assembly: str
    names: tuple[str, ...]
    mcpu: str

    def object_file(self, path: Path) -> Path:
        """Assemble into an ELF object at ``path``."""
        with tempfile.TemporaryDirectory(prefix="tvm-prune-hexagon-") as tmp:
            source = Path(tmp) / "kernels.s"
            source.write_text(self.assembly)
            run_tool(
                [
                    find_tool(CLANG),
                    "--target=hexagon",
                    f"-mcpu={self.mcpu}",
                    "-mhvx",
                    "-c",
                    str(source),
                    "-o",
                    str(path),
                ]
            )
        return path


def build_kernels(mod: tvm.IRModule, target: tvm.target.Target) -> HexagonKernels:
    """Compile the (scheduled or not) PrimFuncs of ``mod`` for the Hexagon ``target``."""
    if target.kind.name != "hexagon":
        raise CompileError(f"target {target.kind.name} is not a Hexagon target")
    target = tvm.target.Target(target, host=target)
    names = tuple(
        gvar.name_hint
        for gvar, func in mod.functions_items()
        if isinstance(func, tvm.tirx.PrimFunc)
    )
    mod = tvm.IRModule(
        {
            gvar: func.with_attr("global_symbol", gvar.name_hint)
            for gvar, func in mod.functions_items()
            if isinstance(func, tvm.tirx.PrimFunc)
        }
    )
    # The codegen links a shared object of its own through this hook; TVM's version needs the
    # Hexagon SDK's linker, ours is Debian's lld (registered each time: importing
    # tvm.contrib.hexagon re-registers TVM's).
    tvm_ffi.register_global_func("tvm.contrib.hexagon.link_shared", _lld_link_shared, override=True)
    with target:
        mod = tvm.tirx.transform.BindTarget(target)(mod)
        pipeline, finalize_host, _ = tvm.tirx.get_default_tir_pipeline(target)
        host, device = split_host_device_mods(pipeline(mod))
        # Everything runs on the DSP: the functions split off as "device" are its host code.
        merged = tvm.IRModule({**dict(host.functions_items())})
        for part in device.values():
            merged.update(part)
        module = tvm.get_global_func("target.build.hexagon")(finalize_host()(merged), target)
    return HexagonKernels(
        assembly=str(module.inspect_source("s")), names=names, mcpu=str(target.attrs["mcpu"])
    )


def model_kernels(
    mod: tvm.IRModule, target: tvm.target.Target, pipeline: tvm.transform.Pass
) -> HexagonKernels:
    """The kernels of a bound Relax model after the preset's ``pipeline``.

    Batch norm is decomposed into arithmetic on constants first (TVM's Hexagon codegen has no
    ``sqrt``, and nothing is lost: the statistics are constants). The Relax ``main`` that calls
    the kernels needs TVM's VM on the device, which only a TVM Hexagon runtime provides; here
    the library holds the kernels.
    """
    mod = relax.transform.FoldConstant()(relax.transform.DecomposeOpsForInference()(mod))
    mod = pipeline(mod)
    return build_kernels(
        tvm.IRModule(
            {gv: f for gv, f in mod.functions_items() if isinstance(f, tvm.tirx.PrimFunc)}
        ),
        target,
    )


def kernels_report(kernels: HexagonKernels) -> dict:
    """What the compile report says about a Hexagon library."""
    return {
        "kernels": list(kernels.names),
        "instructions": hvx_instruction_counts(kernels.assembly),
        "library": "kernels only (exported as __tvm_ffi_<name>); the Relax main needs a TVM "
        "Hexagon runtime on the device",
    }


def link_shared(kernels: HexagonKernels, path: Path) -> Path:
    """A Hexagon shared object at ``path`` exporting every kernel (for a TVM Hexagon runtime)."""
    with tempfile.TemporaryDirectory(prefix="tvm-prune-hexagon-") as tmp:
        _lld_link_shared(path, [kernels.object_file(Path(tmp) / "kernels.o")])
    return path


def _lld_link_shared(so_name, objects, extra_args=None) -> int:
    """TVM's ``link_shared`` hook (objects may come as ``StringImm``), done by Debian's lld."""
    del extra_args
    paths = [o.value if isinstance(o, tvm.ir.StringImm) else str(o) for o in objects]
    run_tool([find_tool(LLD), "-m", "hexagonelf", "-shared", *paths, "-o", str(so_name)])
    return 0


def hvx_instruction_counts(assembly: str) -> dict[str, int]:
    """How many HVX instructions (those naming a vector register ``vN``) and scalar ones the
    assembly has, counted per instruction in each packet."""
    counts = {"hvx": 0, "scalar": 0}
    for line in assembly.splitlines():
        text = line.split("//")[0].strip().strip("{}").strip()
        if not text or text.startswith((".", "#")) or text.endswith(":"):
            continue
        for instruction in text.split(";"):
            instruction = instruction.strip()
            if instruction:
                counts["hvx" if _names_vector_register(instruction) else "scalar"] += 1
    return counts


def _names_vector_register(instruction: str) -> bool:
    return re.search(r"\bv\d+(:\d+)?(\.\w+)?\b|\bvmem\(", instruction) is not None


def find_tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise CompileError(
            f"{name} not found: install Debian's clang-22 and lld-22 (scripts/setup)"
        )
    return path


def run_tool(command: list[str]) -> None:
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode:
        first = (result.stderr or result.stdout).strip().splitlines()
        raise CompileError(
            f"{Path(command[0]).name} failed: {first[0] if first else result.returncode}"
        )
