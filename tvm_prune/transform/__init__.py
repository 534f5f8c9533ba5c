"""Relax passes of tvm-prune. In: an ``IRModule`` (weights as ``main`` parameters). Out: the
rewritten module. Each pass is a ``tvm.transform.Pass`` in its own file."""

from .prune_weights import PruneWeights

__all__ = ["PruneWeights"]
