"""Compact storage of pruned weights: a bitmask of the kept elements plus their values.

``pack`` keeps ``ceil(n / 8)`` bytes of mask and the kept values in the weight's dtype; a
float32 weight at 70 % sparsity packs to ``0.3 + 1/32`` of its dense size. ``unpack`` is exact.
Only worth it when the mask costs less than the zeros it drops (sparsity above ``1/32`` for
float32); :func:`pack_params` leaves other weights dense.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class PackedTensor:
    shape: tuple[int, ...]
    dtype: str
    bitmask: bytes
    values: np.ndarray

    @property
    def nbytes(self) -> int:
        return len(self.bitmask) + self.values.nbytes


def pack(array: np.ndarray) -> PackedTensor:
    array = np.asarray(array)
    keep = array.ravel() != 0
    return PackedTensor(
        tuple(array.shape), array.dtype.name, np.packbits(keep).tobytes(), array.ravel()[keep]
    )


def unpack(packed: PackedTensor) -> np.ndarray:
    size = int(np.prod(packed.shape))
    keep = np.unpackbits(np.frombuffer(packed.bitmask, dtype=np.uint8), count=size).astype(bool)
    out = np.zeros(size, dtype=packed.dtype)
    out[keep] = packed.values
    return out.reshape(packed.shape)


def pack_params(
    params: Mapping[str, np.ndarray],
) -> tuple[dict[str, PackedTensor], dict[str, np.ndarray]]:
    """Split ``params`` into packed (where smaller) and dense weights."""
    packed, dense = {}, {}
    for name, value in params.items():
        candidate = pack(value)
        if candidate.nbytes < np.asarray(value).nbytes:
            packed[name] = candidate
        else:
            dense[name] = np.asarray(value)
    return packed, dense


def storage_report(params: Mapping[str, np.ndarray]) -> dict[str, int | float]:
    """Bytes of all weights stored dense vs packed where that is smaller."""
    packed, dense = pack_params(params)
    dense_bytes = sum(np.asarray(v).nbytes for v in params.values())
    packed_bytes = sum(p.nbytes for p in packed.values()) + sum(v.nbytes for v in dense.values())
    return {
        "dense_bytes": dense_bytes,
        "packed_bytes": packed_bytes,
        "packed_ratio": packed_bytes / dense_bytes if dense_bytes else 1.0,
        "packed_tensors": len(packed),
    }
