"""The one loop every Python-written Relax pass of tvm-prune shares."""

from __future__ import annotations

import tvm
from tvm import relax


def rewrite_relax_functions(mod: tvm.IRModule, rewriter: relax.PyExprMutator) -> tvm.IRModule:
    """``mod`` with every Relax function visited by ``rewriter`` (PrimFuncs untouched)."""
    for gvar, func in mod.functions_items():
        if isinstance(func, relax.Function):
            rewriter.builder_.update_func(gvar, rewriter.visit_expr(func))
    return rewriter.builder_.get()
