"""Running a package's library on a device (the local CPU, or a device over TVM RPC).

The runner checks inputs against the package's signature before anything runs: every input
present, none unknown, shapes and dtypes exact. It refuses a package built for another CPU
architecture or device kind with a message saying which.
"""

from __future__ import annotations

import platform
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm
from tvm import relax

from ..errors import RunError
from ..model import TensorSpec
from .metadata import PackageMetadata
from .threads import use_all_cores

LIBRARY_MEMBER = "mod.so"


@dataclass(frozen=True)
class BenchmarkResult:
    """Latency statistics in milliseconds over ``repeat`` measurements of ``number`` runs."""

    mean_ms: float
    median_ms: float
    std_ms: float
    min_ms: float
    max_ms: float
    repeat: int
    number: int

    def to_dict(self) -> dict[str, float | int]:
        return dict(self.__dict__)


class Runner:
    """A package's library loaded on a device, ready to run many times.

    Make one with :meth:`local` (this machine) or :meth:`remote` (an RPC session).
    """

    def __init__(
        self, metadata: PackageMetadata, module: tvm.runtime.Module, device: tvm.runtime.Device
    ):
        self.metadata = metadata
        self.device = device
        # A remote device's type carries the RPC session mask, so this is this machine's CPU.
        self._local_cpu = device.dlpack_device_type() == tvm.cpu().dlpack_device_type()
        if self._local_cpu:
            use_all_cores()
        self._vm = relax.VirtualMachine(module, device)
        # Looked up once: each lookup builds a new closure, and on a small model the Python
        # around a run (lookup, tensor creation) cost more than the kernels.
        self._main = self._vm["main"]
        self._input_tensors: list[tvm.runtime.Tensor | None] = [None] * len(metadata.inputs)
        # On this machine's CPU, numpy views of those tensors: copying into a view is ~15x
        # cheaper than ``Tensor.copyfrom`` (which converts the array through the FFI each time).
        self._input_views: list[np.ndarray | None] = [None] * len(metadata.inputs)

    @classmethod
    def local(cls, metadata: PackageMetadata, library: bytes, device: tvm.runtime.Device) -> Runner:
        """Load on this machine, after checking the package was built for it."""
        check_runnable_here(metadata, device)
        # load_module needs a file; the handle keeps the library mapped after the file is gone.
        with tempfile.TemporaryDirectory(prefix="tvm-prune-") as tmp:
            lib_path = Path(tmp) / LIBRARY_MEMBER
            lib_path.write_bytes(library)
            return cls(metadata, tvm.runtime.load_module(str(lib_path)), device)

    @classmethod
    def remote(cls, metadata: PackageMetadata, library: bytes, session) -> Runner:
        """Upload to an RPC session's device and load there (its OpenCL GPU for an OpenCL
        package, else its CPU)."""
        session.upload(bytearray(library), LIBRARY_MEMBER)
        device = session.cl(0) if metadata.target.get("kind") == "opencl" else session.cpu()
        return cls(metadata, session.load_module(LIBRARY_MEMBER), device)

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run once; outputs keyed by the model's output names."""
        result = self._main(*self._device_args(inputs))
        return self._outputs(result)

    def benchmark(
        self,
        inputs: Mapping[str, np.ndarray],
        *,
        repeat: int = 10,
        number: int = 1,
        min_repeat_ms: int = 0,
    ) -> BenchmarkResult:
        """Time ``main`` with TVM's ``time_evaluator`` on the device (one warm-up run is
        discarded; ``number`` grows until a measurement lasts ``min_repeat_ms``)."""
        if repeat < 1 or number < 1:
            raise RunError("--repeat and --number must be at least 1")
        self._vm.set_input("main", *self._device_args(inputs))
        timer = self._vm.time_evaluator(
            "invoke_stateful",
            self.device,
            number=number,
            repeat=repeat,
            min_repeat_ms=min_repeat_ms,
        )
        results_ms = np.asarray(timer("main").results) * 1e3
        return BenchmarkResult(
            mean_ms=float(results_ms.mean()),
            median_ms=float(np.median(results_ms)),
            std_ms=float(results_ms.std()),
            min_ms=float(results_ms.min()),
            max_ms=float(results_ms.max()),
            repeat=repeat,
            number=number,
        )

    def _device_args(self, inputs: Mapping[str, np.ndarray]) -> list[tvm.runtime.Tensor]:
        """The inputs on the device, copied into the tensors of the previous run when the
        shapes match (a copy into an existing tensor is a fraction of making one)."""
        arrays = check_inputs(self.metadata.inputs, inputs)
        for index, array in enumerate(arrays):
            cached = self._input_tensors[index]
            if cached is None or tuple(cached.shape) != array.shape:
                cached = self._input_tensors[index] = tvm.runtime.tensor(array, self.device)
                if self._local_cpu:
                    self._input_views[index] = np.from_dlpack(cached)
            elif self._local_cpu:
                np.copyto(self._input_views[index], array)
            else:
                cached.copyfrom(array)
        return list(self._input_tensors)

    def _outputs(self, result) -> dict[str, np.ndarray]:
        values = [result] if len(self.metadata.outputs) == 1 else list(result)
        return {
            spec.name: self._to_numpy(value)
            for spec, value in zip(self.metadata.outputs, values, strict=True)
        }

    def _to_numpy(self, value: tvm.runtime.Tensor) -> np.ndarray:
        if self._local_cpu:
            # A DLPack view copied: about 10x cheaper than ``.numpy()`` on small outputs.
            return np.from_dlpack(value).copy()
        return value.numpy()


def check_inputs(
    specs: tuple[TensorSpec, ...], inputs: Mapping[str, np.ndarray]
) -> list[np.ndarray]:
    """The inputs in signature order, or a :class:`RunError` naming the first mismatch."""
    if len(inputs) != len(specs) or not all(spec.name in inputs for spec in specs):
        expected = [spec.name for spec in specs]
        missing = [name for name in expected if name not in inputs]
        unknown = sorted(set(inputs) - set(expected))
        parts = []
        if missing:
            parts.append(f"missing input(s) {', '.join(missing)}")
        if unknown:
            parts.append(f"unknown input(s) {', '.join(unknown)}")
        raise RunError(f"{'; '.join(parts)}; the model's inputs are: {', '.join(expected)}")
    arrays = []
    for spec in specs:
        array = np.asarray(inputs[spec.name])
        if tuple(array.shape) != spec.shape:
            raise RunError(
                f"input '{spec.name}': shape {list(array.shape)} given, {list(spec.shape)} expected"
            )
        # Not ``dtype.name``: building that string took 1.9 us of a 23 us model's run.
        if array.dtype != spec.dtype:
            raise RunError(f"input '{spec.name}': dtype {array.dtype} given, {spec.dtype} expected")
        arrays.append(np.ascontiguousarray(array))
    return arrays


def check_runnable_here(metadata: PackageMetadata, device: tvm.runtime.Device) -> None:
    """Refuse a package this machine cannot execute, saying why."""
    kind = metadata.target.get("kind")
    if kind != "llvm" or device.dlpack_device_type() != tvm.cpu().dlpack_device_type():
        raise RunError(
            f"package for target kind '{kind}' ({metadata.target_preset}) cannot run on this "
            f"machine's CPU; run it on its device"
        )
    arch = metadata.host_triple.split("-", 1)[0]
    here = platform.machine()
    if arch != here and not (arch == "arm64" and here == "aarch64"):
        raise RunError(
            f"package built for {metadata.host_triple} ({metadata.target_preset}) cannot run on "
            f"this {here} machine; run it on the device"
        )
