"""Behaviour metrics against straightforward numpy loops."""

from __future__ import annotations

import math

import numpy as np
import pytest

from tvm_prune.prune.metrics import METRICS, accuracy


@pytest.fixture
def pair():
    rng = np.random.default_rng(0)
    dense = rng.standard_normal((6, 10))
    return dense, dense + 0.3 * rng.standard_normal((6, 10))


def test_kl_matches_a_loop(pair):
    dense, pruned = pair
    total = 0.0
    for a, b in zip(dense, pruned, strict=True):
        p = [math.exp(v) for v in a]
        q = [math.exp(v) for v in b]
        p = [v / sum(p) for v in p]
        q = [v / sum(q) for v in q]
        total += sum(pi * math.log(pi / qi) for pi, qi in zip(p, q, strict=True))
    assert METRICS["kl"](dense, pruned) == pytest.approx(total / len(dense), rel=1e-9)
    assert METRICS["kl"](dense, dense) == pytest.approx(0.0, abs=1e-12)


def test_top1_rel_l2_cosine(pair):
    dense, pruned = pair
    flips = sum(int(np.argmax(a) != np.argmax(b)) for a, b in zip(dense, pruned, strict=True))
    assert METRICS["top1"](dense, pruned) == flips / len(dense)
    shifted = dense.copy()
    shifted[0] = -shifted[0]
    assert METRICS["top1"](dense, shifted) >= 1 / 6

    squares = sum((b - a) ** 2 for a, b in zip(dense.ravel(), pruned.ravel(), strict=True))
    norm = math.sqrt(sum(a * a for a in dense.ravel()))
    assert METRICS["rel-l2"](dense, pruned) == pytest.approx(math.sqrt(squares) / norm)

    cosines = [
        float(a @ b) / math.sqrt(float(a @ a) * float(b @ b))
        for a, b in zip(dense, pruned, strict=True)
    ]
    expected = sum(1 - c for c in cosines) / len(cosines)
    assert METRICS["cosine"](dense, pruned) == pytest.approx(expected)
    assert METRICS["cosine"](dense, 2 * dense) == pytest.approx(0.0, abs=1e-12)


def test_accuracy():
    outputs = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    assert accuracy(outputs, np.array([1, 0, 0])) == pytest.approx(2 / 3)
