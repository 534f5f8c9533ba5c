"""The tensor intrinsic ``VrmpyDense`` tensorizes with: 32 int32 accumulators += 4 uint8 values
x a 32 x 4 int8 tile, one ``vrmpybusv.acc`` (each 32-bit lane multiplies its 4 int8 weights by
the same 4 broadcast uint8 inputs and adds the sum).

TVM ships the same intrinsic in ``tvm.s_tir.tensor_intrin.hexagon``, but importing that module
registers every Hexagon intrinsic at once and takes 40+ s here; this registers only ours, once.
"""

from __future__ import annotations

from tvm.s_tir import TensorIntrin
from tvm.script import tirx as T

NAME = "tvm_prune.hexagon.vrmpy_u8i8i32"
LANES, DEPTH = 32, 4  # int32 outputs per 128-byte vector, products summed per output


@T.prim_func(s_tir=True)
def _desc(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (DEPTH,), "uint8", offset_factor=1)
    B = T.match_buffer(b, (LANES, DEPTH), "int8", offset_factor=1)
    C = T.match_buffer(c, (LANES,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:LANES], A[0:DEPTH], B[0:LANES, 0:DEPTH])
        T.writes(C[0:LANES])
        for i, k in T.grid(LANES, DEPTH):
            with T.sblock("update"):
                vi, vk = T.axis.remap("SR", [i, k])
                C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")


@T.prim_func(s_tir=True)
def _impl(a: T.handle, b: T.handle, c: T.handle) -> None:
    A = T.match_buffer(a, (DEPTH,), "uint8", offset_factor=1)
    B = T.match_buffer(b, (LANES, DEPTH), "int8", offset_factor=1)
    C = T.match_buffer(c, (LANES,), "int32", offset_factor=1)
    with T.sblock("root"):
        T.reads(C[0:LANES], A[0:DEPTH], B[0:LANES, 0:DEPTH])
        T.writes(C[0:LANES])
        inputs = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
        weights = T.reinterpret(B.vload([0, 0], dtype="int8x128"), dtype="int32x32")
        C[T.ramp(T.int32(0), 1, LANES)] = T.call_llvm_pure_intrin(
            T.llvm_lookup_intrinsic_id("llvm.hexagon.V6.vrmpybusv.acc.128B"),
            C[T.ramp(T.int32(0), 1, LANES)],
            T.broadcast(inputs, LANES),
            weights,
            dtype="int32x32",
        )


def vrmpy_intrin() -> str:
    """The intrinsic's name, registered on first use."""
    try:
        TensorIntrin.get(NAME)
    except Exception:  # not registered yet (TVM raises a plain error for unknown names)
        TensorIntrin.register(NAME, _desc, _impl)
    return NAME
