"""Bitmask + values storage: exact round trip and the sizes it reports."""

from __future__ import annotations

import numpy as np

from tvm_prune.prune.sparse import pack, pack_params, storage_report, unpack


def test_round_trip_is_exact():
    rng = np.random.default_rng(0)
    weight = rng.standard_normal((17, 3, 3, 3)).astype(np.float32)
    weight[rng.random(weight.shape) < 0.7] = 0
    packed = pack(weight)
    restored = unpack(packed)
    assert restored.dtype == weight.dtype and restored.shape == weight.shape
    np.testing.assert_array_equal(restored, weight)
    kept = int(np.count_nonzero(weight))
    assert packed.nbytes == (weight.size + 7) // 8 + 4 * kept


def test_only_sparse_weights_are_packed():
    dense = np.ones((8, 8), np.float32)
    sparse = np.zeros((8, 8), np.float32)
    sparse[0, 0] = 2.0
    packed, kept_dense = pack_params({"d": dense, "s": sparse})
    assert set(packed) == {"s"} and set(kept_dense) == {"d"}
    report = storage_report({"d": dense, "s": sparse})
    assert report["dense_bytes"] == 512
    assert report["packed_bytes"] == 256 + 8 + 4
