"""A compiled model on disk: load, inspect, run."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tvm

from ..model import TensorSpec
from .archive import read_package
from .metadata import PackageMetadata
from .runner import LIBRARY_MEMBER, Runner


@dataclass(frozen=True)
class Package:
    """A checked ``model.tar``: its metadata and member bytes (checksums already verified)."""

    path: Path
    metadata: PackageMetadata
    members: Mapping[str, bytes]

    @classmethod
    def load(cls, path: str | Path) -> Package:
        """Read ``path``; raises :class:`~tvm_prune.errors.PackageError` if it is unsafe."""
        metadata, members = read_package(Path(path))
        return cls(path=Path(path), metadata=metadata, members=members)

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self.metadata.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self.metadata.outputs

    def runner(self, device: tvm.runtime.Device | None = None, *, session=None) -> Runner:
        """Load the library for repeated runs: on an RPC ``session``'s device if given, else on
        ``device`` (default: this machine's CPU)."""
        library = self.members[LIBRARY_MEMBER]
        if session is not None:
            return Runner.remote(self.metadata, library, session)
        return Runner.local(self.metadata, library, device or tvm.cpu(0))

    def run(
        self, inputs: Mapping[str, np.ndarray], *, device: tvm.runtime.Device | None = None
    ) -> dict[str, np.ndarray]:
        """Run once on ``device``; inputs and outputs are keyed by the model's tensor names."""
        return self.runner(device).run(inputs)
