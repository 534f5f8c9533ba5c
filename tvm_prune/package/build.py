"""Model -> package: bind weights, compile for the preset's target, export, write ``model.tar``.

Compilation runs inside one ``PassContext`` holding the opt level and the passes the user
disabled by name (tvmc's ``--disabled-pass``); TVM skips any pass, ours or its own, whose name
is listed there. The export uses the preset's cross compiler (or the user's override):
a driver on PATH such as ``aarch64-linux-gnu-g++``, ``ndk`` for the Android NDK's clang++
(:func:`ndk_compiler`), or none for this machine's compiler. A missing compiler is reported
before the build, not after it.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import tempfile
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import tvm

from .. import __version__
from ..errors import CompileError, TvmPruneError, tvm_error_line
from ..frontend import load_onnx
from ..model import Model
from ..pipeline import build_pipeline
from ..target import TargetPreset, resolve_target
from ..target.presets import export_target
from ..transform import default_rewrites
from . import hexagon
from .archive import check_writable, sha256_bytes, sha256_file, write_package
from .metadata import PackageMetadata
from .package import Package
from .runner import LIBRARY_MEMBER

logger = logging.getLogger(__name__)


def compile_model(
    model: Model | str | Path,
    *,
    target: TargetPreset | str | Mapping = "host",
    output: str | Path = "model.tar",
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    opt_level: int = 3,
    disabled_passes: Sequence[str] = (),
    tuning_records: str | Path | None = None,
    schedule_rules: bool = True,
) -> Package:
    """Compile ``model`` (a :class:`Model` or an ONNX path) into a package at ``output``.

    Parameters
    ----------
    model : Model, str or Path
        An imported model, or an ONNX file imported with ``input_shapes``.
    target : TargetPreset, str or Mapping
        A preset, preset name, JSON dict, tag or tvmc target string (see ``resolve_target``).
    output : str or Path
        Where ``model.tar`` goes; written atomically.
    opt_level : int
        TVM's ``PassContext`` opt level, 0-3.
    disabled_passes : Sequence[str]
        Pass names TVM must skip.
    tuning_records : str or Path, optional
        A MetaSchedule database folder whose records are applied where they match.
    schedule_rules : bool
        Schedule the kernels records did not cover with the preset's zero-tuning rules
        (``tvm_prune.schedule``); False leaves them to TVM's defaults (naive loops on CPU).
    """
    if not 0 <= opt_level <= 3:
        raise CompileError(f"opt level {opt_level} is not in 0..3")
    preset = resolve_target(target)
    check_writable(Path(output))
    # A missing cross compiler fails here, not after the build.
    fcompile = export_function(
        preset.name, cross_compiler_of(preset), preset.cross_compiler_options
    )
    seconds: dict[str, float] = {}

    start = time.perf_counter()
    if not isinstance(model, Model):
        logger.info("importing %s", model)
        model = load_onnx(model, input_shapes=input_shapes)
    seconds["import"] = time.perf_counter() - start

    records_report = None
    schedule_report: dict = {}
    pipeline = build_pipeline(preset, report=schedule_report, rules=None if schedule_rules else ())
    logger.info("building for %s (minutes for large models)", preset.name)
    start = time.perf_counter()
    for name in _unknown_passes(disabled_passes, preset):
        logger.warning("--disabled-pass %s: TVM and tvm-prune have no pass of that name", name)
    with (
        preset.target,
        tvm.transform.PassContext(opt_level=opt_level, disabled_pass=list(disabled_passes)),
    ):
        mod, rewrites = rewritten_module(model, preset)
        rewrite_records = [
            {"name": rewrite.info.name, "report": {"rewrites": list(rewrite.report)}}
            for rewrite in rewrites
            if rewrite.info.name not in disabled_passes
        ]
        if tuning_records is not None:
            from ..tuning_records import apply_tuning_records

            mod, records_report = apply_tuning_records(mod, preset.target, Path(tuning_records))
        try:
            if preset.target.kind.name == "hexagon":
                kernels = hexagon.model_kernels(mod, preset.target, pipeline)
            else:
                executable = tvm.compile(mod, target=preset.target, relax_pipeline=pipeline)
        except TvmPruneError:
            raise
        except Exception as exc:
            # A disabled pass the build needs (CallTIRRewrite, LegalizeOps) fails here.
            disabled = f" (disabled: {', '.join(disabled_passes)})" if disabled_passes else ""
            raise CompileError(
                f"{model.source}: compiling for target {preset.name}{disabled} failed: "
                f"{tvm_error_line(exc)}"
            ) from exc
    seconds["build"] = time.perf_counter() - start

    logger.info("exporting the library (%s)", preset.cross_compiler or "this machine's compiler")
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="tvm-prune-") as tmp:
        lib_path = Path(tmp) / LIBRARY_MEMBER
        try:
            if preset.target.kind.name == "hexagon":
                hexagon.link_shared(kernels, lib_path)
                schedule_report["hexagon"] = hexagon.kernels_report(kernels)
            else:
                executable.export_library(str(lib_path), fcompile=fcompile)
        except TvmPruneError:
            raise
        except Exception as exc:
            raise CompileError(
                f"exporting the library for target {preset.name} failed: {tvm_error_line(exc)}"
            ) from exc
        library = lib_path.read_bytes()
    seconds["export"] = time.perf_counter() - start

    source_path = Path(model.source)
    metadata = PackageMetadata(
        tvm_version=tvm.__version__,
        tvm_prune_version=__version__,
        target=export_target(preset.target),
        target_preset=preset.name,
        host_triple=preset.host_triple,
        inputs=model.inputs,
        outputs=model.outputs,
        transforms=(*(record.to_dict() for record in model.transforms), *rewrite_records),
        compile={
            "opt_level": opt_level,
            "disabled_passes": list(disabled_passes),
            "tuning_records": records_report,
            "schedule": schedule_report,
            "cross_compiler": preset.cross_compiler,
            "cross_compiler_options": list(preset.cross_compiler_options),
            "seconds": {phase: round(value, 3) for phase, value in seconds.items()},
        },
        source={
            "file": source_path.name,
            "sha256": sha256_file(source_path) if source_path.is_file() else None,
        },
        files={LIBRARY_MEMBER: sha256_bytes(library)},
    )
    write_package(Path(output), {LIBRARY_MEMBER: library}, metadata)
    return Package(path=Path(output), metadata=metadata, members={LIBRARY_MEMBER: library})


def _unknown_passes(names: Sequence[str], preset: TargetPreset) -> list[str]:
    """``names`` that are neither one of our rewrites nor a pass constructor of TVM's transform
    modules (a pass is named after its constructor): TVM ignores those silently, a typo
    included."""
    import tvm.s_tir.transform

    known = {rewrite.info.name for rewrite in default_rewrites(preset)}
    for module in (tvm.transform, tvm.relax.transform, tvm.tirx.transform, tvm.s_tir.transform):
        known.update(dir(module))
    return [name for name in names if name not in known]


def rewritten_module(
    model: Model, preset: TargetPreset | None = None
) -> tuple[tvm.IRModule, list[tvm.transform.Pass]]:
    """The bound module after our graph rewrites (the form that is tuned and compiled), and the
    rewrites (their reports are filled). Run inside the build's target and ``PassContext``."""
    # Fold what the bound weights make constant (weight transposes, PruneWeights masks,
    # RemoveChannels slices): TVM's default pipeline does not, and the library would carry both.
    mod = model.folded_module()
    rewrites = default_rewrites(preset)
    return tvm.transform.Sequential(rewrites)(mod), rewrites


def cross_compiler_of(preset: TargetPreset) -> str | None:
    """The compiler driver that links ``preset``'s libraries (``ndk`` resolved to the NDK's
    clang++), or None for this machine's."""
    if preset.cross_compiler == "ndk":
        return ndk_compiler(preset)
    return preset.cross_compiler


def export_function(target_name: str, cross_compiler: str | None, options: Sequence[str] = ()):
    """``fcompile`` for ``export_library``: a driver on PATH, or None (this machine's)."""
    if cross_compiler is None:
        return None
    if shutil.which(cross_compiler) is None:
        raise CompileError(
            f"cross compiler '{cross_compiler}' for target {target_name} is not on PATH; "
            "install it or name another with --cross-compiler"
        )
    from tvm.support import cc

    return cc.cross_compiler(cross_compiler, options=list(options))


NDK_DEFAULT_API_LEVEL = 24


def ndk_compiler(preset: TargetPreset, environ=os.environ) -> str:
    """The Android NDK's clang++ for ``preset``: ``TVM_NDK_CC`` (TVM's own variable), else
    ``$ANDROID_NDK_HOME/toolchains/llvm/prebuilt/linux-x86_64/bin/<triple><api>-clang++`` with
    the API level from the target triple (``aarch64-linux-android24``; default 24)."""
    if environ.get("TVM_NDK_CC"):
        compiler = environ["TVM_NDK_CC"]
        if shutil.which(compiler) is None:
            raise CompileError(f"TVM_NDK_CC={compiler} is not an executable compiler")
        return compiler
    triple = preset.host_triple
    match = re.fullmatch(r"(\w+)-linux-android(\d*)", triple)
    if not match:
        raise CompileError(f"target {preset.name}: '{triple}' is not an Android triple")
    if not environ.get("ANDROID_NDK_HOME"):
        raise CompileError(
            f"target {preset.name} needs the Android NDK: set ANDROID_NDK_HOME to the NDK folder "
            "or TVM_NDK_CC to its clang++, or use --cross-compiler clang --cross-compiler-options "
            f"'--target={match[1]}-linux-android{match[2] or NDK_DEFAULT_API_LEVEL} "
            "-fuse-ld=lld -nostdlib'"
        )
    compiler = (
        Path(environ["ANDROID_NDK_HOME"])
        / "toolchains/llvm/prebuilt/linux-x86_64/bin"
        / f"{match[1]}-linux-android{match[2] or NDK_DEFAULT_API_LEVEL}-clang++"
    )
    if not os.access(compiler, os.X_OK):
        raise CompileError(f"ANDROID_NDK_HOME has no {compiler.name} (looked for {compiler})")
    return str(compiler)
