"""What a model's weights cost in a package, before and after pruning.

Packages are gzip-compressed tars (:mod:`tvm_prune.package.archive`), so the zeros pruning
leaves in a weight are stored in almost no space: DEFLATE turns a float32 weight at 70 %
sparsity into about 35 % of its raw size, as small as a bitmask plus the kept values (33 %),
while dense float32 weights barely compress (about 92 %). This report measures exactly that
compression, with the same level the package writer uses, on the weights as they go into the
library.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping

import numpy as np

from ..package.archive import COMPRESS_LEVEL


def compressed_bytes(params: Mapping[str, np.ndarray]) -> int:
    """Bytes the weights take once DEFLATE-compressed (one stream, as in the package)."""
    stream = zlib.compressobj(COMPRESS_LEVEL)
    size = 0
    for value in params.values():
        size += len(stream.compress(np.ascontiguousarray(value).tobytes()))
    return size + len(stream.flush())


def storage_report(
    dense: Mapping[str, np.ndarray], pruned: Mapping[str, np.ndarray]
) -> dict[str, int | float]:
    """Raw and compressed bytes of the weights before (``dense``) and after pruning."""
    raw = sum(np.asarray(v).nbytes for v in dense.values())
    dense_compressed = compressed_bytes(dense)
    pruned_compressed = compressed_bytes(pruned)
    return {
        "raw_bytes": raw,
        "dense_compressed_bytes": dense_compressed,
        "pruned_compressed_bytes": pruned_compressed,
        "pruned_to_dense": pruned_compressed / dense_compressed if dense_compressed else 1.0,
    }
