"""A package -> a folder a Linux device runs without Python (``tvm-prune bundle``).

Contents:

* ``mod.so``: the model library from the package;
* ``libtvm_runtime.so``, ``libtvm_ffi.so``: the TVM runtime of the pinned wheels, built for the
  device's architecture;
* ``tvm_prune_run``: the C++ runner (``cross_compile/runner/tvm_prune_run.cc``) built against
  them with the package's cross compiler; it finds them next to itself (``$ORIGIN`` rpath);
* ``manifest.json``: inputs in the order the runner takes them, outputs, target, versions and the
  sha256 of every other file.

The runtime libraries for this machine's architecture are the installed wheels' own. For another
architecture (aarch64 from an x86 host) pip downloads the pinned wheels for that platform once
into ``~/.cache/tvm-prune/runtime/<arch>`` (pip fetches wheels for any platform; nothing is
installed). The runner compiles against tvm-ffi's headers from the installed wheel: they do not
depend on the architecture and are the same version.

Refused, with the reason: packages for a device other than a CPU, and Android (the wheels'
runtime is built against glibc; Android needs a TVM runtime built with the NDK).
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import zipfile
from importlib import metadata as distributions
from importlib import resources
from pathlib import Path

from ..errors import CompileError, PackageError
from .archive import sha256_file, write_atomic
from .package import Package
from .runner import LIBRARY_MEMBER

RUNNER = "tvm_prune_run"
RUNTIME_LIBRARIES = {
    "libtvm_runtime.so": ("apache-tvm", "tvm/lib/libtvm_runtime.so"),
    "libtvm_ffi.so": ("apache-tvm-ffi", "tvm_ffi/lib/libtvm_ffi.so"),
}
WHEEL_PLATFORMS = {
    "aarch64": ("manylinux_2_28_aarch64", "manylinux2014_aarch64"),
    "x86_64": ("manylinux_2_28_x86_64", "manylinux2014_x86_64"),
}
MANIFEST = "manifest.json"


def write_bundle(
    package: Package | str | Path, output: str | Path, *, cxx: str | None = None
) -> dict:
    """Write the bundle of ``package`` to the folder ``output``; return the manifest.

    ``output`` must not exist or be empty; the bundle appears there complete or not at all.
    ``cxx`` overrides the C++ compiler (default: the package's cross compiler, or ``g++`` for a
    package built for this machine).
    """
    if not isinstance(package, Package):
        package = Package.load(package)
    arch = bundle_architecture(package)
    compiler = cxx or _default_compiler(package, arch)
    output = Path(output)
    if output.exists() and (not output.is_dir() or any(output.iterdir())):
        raise PackageError(f"{output}: already exists and is not an empty folder")
    output.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        (staging / LIBRARY_MEMBER).write_bytes(package.members[LIBRARY_MEMBER])
        for name, source in runtime_libraries(arch).items():
            shutil.copyfile(source, staging / name)
        build_runner(compiler, staging)
        manifest = _manifest(package, arch, staging)
        (staging / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
        umask = os.umask(0)
        os.umask(umask)
        staging.chmod(0o777 & ~umask)  # mkdtemp makes it private; give the usual folder mode
        if output.exists():
            output.rmdir()
        staging.rename(output)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def bundle_architecture(package: Package) -> str:
    """The CPU architecture the bundle is for, or a :class:`PackageError` saying why not."""
    meta = package.metadata
    where = f"{package.path} (target {meta.target_preset})"
    if meta.target.get("kind") != "llvm":
        raise PackageError(
            f"{where}: bundles are for CPU targets; a {meta.target.get('kind')} package needs "
            "a TVM runtime with that device's support (see cross_compile/README.md)"
        )
    triple = meta.host_triple
    if "android" in triple:
        raise PackageError(
            f"{where}: the pinned wheels' TVM runtime is built for glibc Linux; Android needs "
            "a TVM runtime built with the NDK (see cross_compile/README.md)"
        )
    arch = triple.split("-")[0]
    if arch not in WHEEL_PLATFORMS or "linux" not in triple:
        raise PackageError(f"{where}: no TVM runtime wheel for {triple}")
    return arch


def runtime_libraries(arch: str) -> dict[str, Path]:
    """``libtvm_runtime.so`` and ``libtvm_ffi.so`` of the installed versions, for ``arch``."""
    if arch == platform.machine():
        return {
            name: Path(distributions.distribution(dist).locate_file(member))
            for name, (dist, member) in RUNTIME_LIBRARIES.items()
        }
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache"))
    folder = cache / "tvm-prune" / "runtime" / arch
    wanted = {
        name: folder / f"{distributions.version(dist)}-{name}"
        for name, (dist, _) in RUNTIME_LIBRARIES.items()
    }
    if not all(path.is_file() for path in wanted.values()):
        _download_runtime(arch, folder, wanted)
    return wanted


def _download_runtime(arch: str, folder: Path, wanted: dict[str, Path]) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    pins = [f"{dist}=={distributions.version(dist)}" for dist, _ in RUNTIME_LIBRARIES.values()]
    platforms = [arg for tag in WHEEL_PLATFORMS[arch] for arg in ("--platform", tag)]
    with tempfile.TemporaryDirectory(prefix="tvm-prune-wheels-") as tmp:
        command = [
            sys.executable, "-m", "pip", "download", "-q", "--disable-pip-version-check",
            "--no-deps", "--only-binary=:all:", *platforms,
            "--python-version", f"{sys.version_info.major}.{sys.version_info.minor}",
            "--implementation", "cp", "-d", tmp, *pins,
        ]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True)
        if result.returncode != 0:
            reason = (result.stderr.strip().splitlines() or ["pip failed"])[-1]
            raise CompileError(f"downloading the {arch} TVM runtime wheels failed: {reason}")
        for name, (dist, member) in RUNTIME_LIBRARIES.items():
            prefix = dist.replace("-", "_") + "-"
            (wheel,) = [p for p in Path(tmp).glob("*.whl") if p.name.startswith(prefix)]
            with zipfile.ZipFile(wheel) as archive:
                data = archive.read(member)
            write_atomic(wanted[name], lambda handle, data=data: handle.write(data))


def build_runner(compiler: str, folder: Path) -> Path:
    """Compile the C++ runner into ``folder`` (which holds the runtime libraries)."""
    if shutil.which(compiler) is None:
        raise CompileError(f"C++ compiler '{compiler}' is not on PATH; install it or pass --cxx")
    source = resources.files("tvm_prune.data") / "cross_compile" / "runner" / f"{RUNNER}.cc"
    headers = Path(distributions.distribution("apache-tvm-ffi").locate_file("tvm_ffi/include"))
    command = [
        compiler, "-std=c++17", "-O2", "-I", str(headers), str(source),
        "-L", str(folder), "-Wl,--no-as-needed", "-ltvm_runtime", "-ltvm_ffi",
        "-Wl,-rpath,$ORIGIN", "-o", str(folder / RUNNER),
    ]  # fmt: skip
    result = subprocess.run(command, capture_output=True, text=True)
    if result.returncode != 0:
        errors = [line for line in result.stderr.splitlines() if "error" in line]
        raise CompileError(
            f"building the runner with {compiler} failed: "
            f"{(errors or result.stderr.strip().splitlines() or ['no output'])[0]}"
        )
    return folder / RUNNER


def _default_compiler(package: Package, arch: str) -> str:
    cross = package.metadata.compile.get("cross_compiler")
    if cross:
        return cross
    if arch != platform.machine():
        raise CompileError(f"{package.path}: no cross compiler for {arch} recorded; pass --cxx")
    return os.environ.get("CXX", "g++")


def _manifest(package: Package, arch: str, folder: Path) -> dict:
    meta = package.metadata
    return {
        "schema": 1,
        "package": {"file": package.path.name, "sha256": sha256_file(package.path)},
        "target_preset": meta.target_preset,
        "host_triple": meta.host_triple,
        "architecture": arch,
        "tvm_version": distributions.version("apache-tvm"),
        "tvm_ffi_version": distributions.version("apache-tvm-ffi"),
        "inputs": [spec.to_dict() for spec in meta.inputs],
        "outputs": [spec.to_dict() for spec in meta.outputs],
        "run": f"./{RUNNER} {LIBRARY_MEMBER} "
        + " ".join(f"{spec.name}.npy" for spec in meta.inputs)
        + " [--out DIR] [--repeat N]",
        "files": {
            path.name: sha256_file(path) for path in sorted(folder.iterdir()) if path.is_file()
        },
    }
