"""Run a model compiled for an OpenCL target (a Mali preset) through pyopencl, here on PoCL.

The apache-tvm wheel has no OpenCL runtime, so this replays what TVM's runtime would do:

- :func:`compile_for_opencl` builds with the preset's pipeline and captures, with a pass
  instrument, the Relax ``main`` after ``RewriteDataflowReshape`` (a sequence of ``call_tir`` and
  ``reshape``) and the TIR after ``tirx.SplitHostDevice``, where each host function calls
  ``T.call_ffi_kernel("<kernel>", args..., <launch extents>)`` with the extents' thread tags in
  ``launch_params``; the OpenCL C is the executable's device module source.
- :class:`OpenCLRunner` builds that source with pyopencl and runs ``main``: each ``call_tir``
  launches its kernels with global size = blockIdx extent x threadIdx extent and local size =
  threadIdx extent per dimension. Fresh buffers are filled with NaN, so elements a kernel never
  writes (a wrong launch) show up in the outputs.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import tvm
from tvm import relax, tirx

from ..errors import TargetError
from ..model import Model
from ..pipeline import build_pipeline
from ..target import TargetPreset, resolve_target

_DIMENSIONS = ("x", "y", "z")


@dataclass(frozen=True)
class KernelLaunch:
    """One ``call_ffi_kernel``: the kernel, which host parameter each argument is, the sizes."""

    kernel: str
    params: tuple[int, ...]
    global_size: tuple[int, ...]
    local_size: tuple[int, ...]


@dataclass(frozen=True)
class OpenCLBuild:
    """What :class:`OpenCLRunner` needs: Relax ``main``, the launches per PrimFunc, the source."""

    main: relax.Function
    launches: Mapping[str, tuple[KernelLaunch, ...]]
    source: str

    def with_launch(self, kernel: str, change: Callable[[KernelLaunch], KernelLaunch]):
        """A copy with ``kernel``'s launch replaced by ``change(launch)`` (negative controls)."""
        launches = {
            name: tuple(change(k) if k.kernel == kernel else k for k in group)
            for name, group in self.launches.items()
        }
        return dataclasses.replace(self, launches=launches)


def compile_for_opencl(
    model: Model | tvm.IRModule,
    target: TargetPreset | str = "mali-g76",
    *,
    rules=None,
    report: dict | None = None,
) -> OpenCLBuild:
    """Compile ``model`` (a :class:`Model`, after our graph rewrites, or a Relax module) for an
    OpenCL preset; ``rules``/``report`` as in :func:`tvm_prune.pipeline.build_pipeline`."""
    from ..package.build import rewritten_module

    preset = resolve_target(target)
    if preset.target.kind.name != "opencl":
        raise TargetError(f"target {preset.name} is not an OpenCL target")
    capture = _Capture()
    with (
        preset.target,
        tvm.transform.PassContext(opt_level=3, instruments=[capture]),
    ):
        mod = rewritten_module(model)[0] if isinstance(model, Model) else model
        pipeline = build_pipeline(preset, report=report, rules=rules)
        executable = tvm.compile(mod, target=preset.target, relax_pipeline=pipeline)
    (device_module,) = [m for m in executable.mod.imports[0].imports if m.kind == "opencl"]
    return OpenCLBuild(
        main=capture.relax["main"],
        launches=_kernel_launches(capture.tir),
        source=device_module.inspect_source(),
    )


@tvm.instrument.pass_instrument
class _Capture:
    """Keeps the module after ``RewriteDataflowReshape`` and after the last SplitHostDevice
    (FoldConstant builds kernels of its own earlier, on the host)."""

    def __init__(self):
        self.relax = None
        self.tir = None

    def run_after_pass(self, mod, info):
        if info.name == "RewriteDataflowReshape":
            self.relax = mod
        elif info.name == "tirx.SplitHostDevice":
            self.tir = mod


def _kernel_launches(mod: tvm.IRModule) -> dict[str, tuple[KernelLaunch, ...]]:
    launches = {}
    for gvar, func in mod.functions_items():
        if not isinstance(func, tirx.PrimFunc) or _is_device(func):
            continue
        statements = list(_statements(func.body))
        # Kernel arguments are buffer_data(buffer); the buffers are DeclBuffers over parameters.
        buffers = {param: i for i, param in enumerate(func.params)}
        aliases = {s.buffer: s.data for s in statements if isinstance(s, tirx.DeclBuffer)}

        def param_of(arg, name=gvar.name_hint, buffers=buffers, aliases=aliases) -> int:
            if isinstance(arg, tvm.ir.Call) and arg.op.name == "tirx.buffer_data":
                buffer = arg.args[0]
                if buffer in buffers:
                    return buffers[buffer]
                if buffer in aliases:
                    return param_of(aliases[buffer])
            raise NotImplementedError(f"{name}: kernel argument {arg} is not a parameter buffer")

        launches[gvar.name_hint] = tuple(
            _launch(gvar.name_hint, s.value, param_of)
            for s in statements
            if isinstance(s, tirx.Evaluate)
            and isinstance(s.value, tvm.ir.Call)
            and s.value.op.name == "tirx.call_ffi_kernel"
        )
    return launches


def _statements(stmt):
    """``stmt`` and the statements nested in it, in program order."""
    yield stmt
    for field in ("seq", "body", "then_case", "else_case"):
        child = getattr(stmt, field, None)
        if child is None:
            continue
        for item in child if field == "seq" else (child,):
            yield from _statements(item)


def _is_device(func: tirx.PrimFunc) -> bool:
    return func.attrs is not None and "calling_conv" in func.attrs


def _launch(func_name: str, call: tvm.ir.Call, param_of) -> KernelLaunch:
    tags = [str(tag) for tag in call.attrs.launch_params]
    kernel = str(call.args[0].value)
    split = len(call.args) - len(tags)
    args, extents = call.args[1:split], call.args[split:]
    params = [param_of(arg) for arg in args]
    sizes = {}
    for tag, extent in zip(tags, extents, strict=True):
        if not isinstance(extent, tirx.IntImm):
            raise NotImplementedError(f"{func_name}: launch extent {tag}={extent} is not static")
        sizes[tag] = int(extent)
    unknown = set(sizes) - {f"{s}.{d}" for s in ("blockIdx", "threadIdx") for d in _DIMENSIONS}
    if unknown:
        raise NotImplementedError(f"{func_name}: launch parameters {sorted(unknown)}")
    local = tuple(sizes.get(f"threadIdx.{d}", 1) for d in _DIMENSIONS)
    blocks = tuple(sizes.get(f"blockIdx.{d}", 1) for d in _DIMENSIONS)
    return KernelLaunch(
        kernel=kernel,
        params=tuple(params),
        global_size=tuple(b * t for b, t in zip(blocks, local, strict=True)),
        local_size=local,
    )


@dataclass
class _Tensor:
    buffer: object  # pyopencl.Buffer
    shape: tuple[int, ...]
    dtype: np.dtype


class OpenCLRunner:
    """Runs an :class:`OpenCLBuild` on the first OpenCL device pyopencl finds (PoCL here)."""

    def __init__(self, build: OpenCLBuild):
        import pyopencl as cl

        self._cl = cl
        self.build = build
        self.context = cl.create_some_context(interactive=False)
        self.queue = cl.CommandQueue(self.context)
        self.program = cl.Program(self.context, build.source).build()
        self._kernels = {}
        self._constants: dict[int, tuple[tvm.ir.GenericConst, _Tensor]] = {}

    def run(self, inputs: Sequence[np.ndarray]) -> list[np.ndarray]:
        """Outputs of ``main`` for ``inputs`` (in ``main``'s parameter order), as numpy."""
        outputs = self._run(inputs)
        self.queue.finish()
        return [self._download(t) for t in outputs]

    def time(self, inputs: Sequence[np.ndarray], *, repeat: int = 5) -> float:
        """Best wall-clock seconds of ``repeat`` whole runs (after one warm-up), including the
        NaN-filled output buffer of every call (no memory pool, unlike TVM's VM)."""
        self.run(inputs)
        best = float("inf")
        for _ in range(repeat):
            start = time.perf_counter()
            self._run(inputs)
            self.queue.finish()
            best = min(best, time.perf_counter() - start)
        return best

    def _run(self, inputs: Sequence[np.ndarray]) -> list[_Tensor]:
        main = self.build.main
        if len(inputs) != len(main.params):
            raise ValueError(f"main takes {len(main.params)} inputs, got {len(inputs)}")
        env = {
            param: self._upload(np.asarray(value, dtype=str(param.ty.dtype)))
            for param, value in zip(main.params, inputs, strict=True)
        }
        for block in main.body.blocks:
            for binding in block.bindings:
                env[binding.var] = self._eval(binding.value, env)
        result = self._eval(main.body.body, env)
        return list(result) if isinstance(result, tuple) else [result]

    def _eval(self, expr, env):
        if isinstance(expr, relax.Var):
            return env[expr]
        if isinstance(expr, tvm.ir.GenericConst):
            if id(expr) not in self._constants:
                self._constants[id(expr)] = (expr, self._upload(expr.value.numpy()))
            return self._constants[id(expr)][1]
        if isinstance(expr, relax.Tuple):
            return tuple(self._eval(field, env) for field in expr.fields)
        if isinstance(expr, relax.TupleGetItem):
            return self._eval(expr.tuple_value, env)[expr.index]
        if isinstance(expr, relax.Call) and isinstance(expr.op, tvm.ir.Op):
            if expr.op.name == "relax.call_tir":
                return self._call_tir(expr, env)
            if expr.op.name == "relax.reshape":
                tensor = self._eval(expr.args[0], env)
                return _Tensor(tensor.buffer, _static_shape(expr.ty), tensor.dtype)
        raise NotImplementedError(f"the OpenCL runner cannot run {type(expr).__name__}: {expr}")

    def _call_tir(self, call: relax.Call, env):
        func_name = call.args[0].name_hint
        args = [self._eval(arg, env) for arg in call.args[1].fields]
        out_type = call.ty
        is_tuple = isinstance(out_type, relax.TupleType)
        outputs = [self._allocate(ty) for ty in (out_type.fields if is_tuple else [out_type])]
        tensors = args + outputs
        for launch in self.build.launches[func_name]:
            kernel = self._kernel(launch.kernel)
            kernel.set_args(*(tensors[i].buffer for i in launch.params))
            self._cl.enqueue_nd_range_kernel(
                self.queue, kernel, launch.global_size, launch.local_size
            )
        return tuple(outputs) if is_tuple else outputs[0]

    def _kernel(self, name: str):
        if name not in self._kernels:
            self._kernels[name] = self._cl.Kernel(self.program, name)
        return self._kernels[name]

    def _allocate(self, ty: relax.TensorType) -> _Tensor:
        shape, dtype = _static_shape(ty), np.dtype(str(ty.dtype))
        fill = np.full(shape, np.nan if dtype.kind == "f" else -1, dtype=dtype)
        return self._upload(fill)

    def _upload(self, array: np.ndarray) -> _Tensor:
        array = np.ascontiguousarray(array)
        flags = self._cl.mem_flags.READ_WRITE | self._cl.mem_flags.COPY_HOST_PTR
        # OpenCL refuses zero-sized buffers.
        host = array if array.nbytes else np.zeros(1, array.dtype)
        buffer = self._cl.Buffer(self.context, flags, hostbuf=host)
        return _Tensor(buffer, array.shape, array.dtype)

    def _download(self, tensor: _Tensor) -> np.ndarray:
        result = np.empty(tensor.shape, tensor.dtype)
        if result.nbytes:
            self._cl.enqueue_copy(self.queue, result, tensor.buffer)
        return result


def _static_shape(ty: relax.TensorType) -> tuple[int, ...]:
    return tuple(int(dim) for dim in ty.shape)
