"""The value every stage passes on: a Relax module with its weights kept apart.

A :class:`Model` is frozen. Stages (pruning, rewrites) return a new ``Model``; none edits one in
place. Weights stay parameters of ``main`` (after the ``num_input`` real inputs) until the build
binds them, so passes can change them without re-importing the ONNX file.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np
import tvm


@dataclass(frozen=True)
class TensorSpec:
    """Name, static shape and dtype of one model input or output."""

    name: str
    shape: tuple[int, ...]
    dtype: str

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> TensorSpec:
        return cls(str(data["name"]), tuple(int(d) for d in data["shape"]), str(data["dtype"]))


@dataclass(frozen=True)
class TransformRecord:
    """One transform applied to a model, with the report it produced (JSON-serialisable)."""

    name: str
    report: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "report": dict(self.report)}


@dataclass(frozen=True)
class Model:
    """A Relax module whose ``main`` takes ``inputs`` then the weights named in ``params``.

    Attributes
    ----------
    mod : tvm.IRModule
        ``main`` has parameters ``[*inputs, *weights]``; ``num_input`` is set on it.
    params : Mapping[str, np.ndarray]
        Weight values keyed by the Relax parameter name, in parameter order.
    inputs, outputs : tuple[TensorSpec, ...]
        The user-facing names (ONNX names, not sanitised Relax names), shapes and dtypes.
    source : str
        Where the model came from (a file path), for reports.
    transforms : tuple[TransformRecord, ...]
        Transforms applied so far, in order.
    """

    mod: tvm.IRModule
    params: Mapping[str, np.ndarray]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    source: str
    transforms: tuple[TransformRecord, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", MappingProxyType(dict(self.params)))

    def with_transform(
        self,
        mod: tvm.IRModule,
        record: TransformRecord,
        *,
        params: Mapping[str, np.ndarray] | None = None,
    ) -> Model:
        """A new model with ``mod`` (and ``params``, if given) and ``record`` appended."""
        return replace(
            self,
            mod=mod,
            params=self.params if params is None else params,
            transforms=(*self.transforms, record),
        )

    def bound_module(self) -> tvm.IRModule:
        """``mod`` with every weight bound as a constant: what gets compiled."""
        bind = {name: tvm.runtime.tensor(value) for name, value in self.params.items()}
        return tvm.relax.transform.BindParams("main", bind)(self.mod) if bind else self.mod

    def folded_module(self) -> tvm.IRModule:
        """``bound_module`` with everything the weights alone determine already computed.

        ``FoldConstant`` builds and runs each constant call on its own, a compile per call: 69 s
        for the ~140 weight slices and removed-channel constants of a channel-pruned digits CNN
        (2 s dense). Here ``LiftTransformParams`` gathers those calls into one function, built
        once with TVM's default build (8 s there) and run once; ``FoldConstant`` does the rest.
        """
        relax = tvm.relax
        # A context of its own: this computes constants on the host, whatever the build's opt
        # level and disabled passes (below opt level 1 the lift is skipped like any optimisation
        # pass; without CallTIRRewrite the helper cannot be built).
        with tvm.transform.PassContext(opt_level=3):
            lifted = relax.transform.LiftTransformParams()(self.mod)
            lift = lifted.get_global_var("main_transform_params")
            helpers = {gv: f for gv, f in lifted.functions_items() if gv.name_hint != "main"}
            executable = tvm.compile(tvm.IRModule(helpers), target="llvm")
            weights = [tvm.runtime.tensor(np.ascontiguousarray(v)) for v in self.params.values()]
            computed = relax.VirtualMachine(executable, tvm.cpu())[lift.name_hint](weights)
            main = lifted["main"]
            bind = dict(zip(main.params[len(self.inputs) :], computed, strict=True))
            mod = tvm.IRModule({gv: f for gv, f in lifted.functions_items() if gv != lift})
            return relax.transform.FoldConstant()(relax.transform.BindParams("main", bind)(mod))
