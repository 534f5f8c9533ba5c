"""``metadata.json``: everything a runner and a reader of the package need to know.

Schema version 1 fields: ``schema_version``, ``tvm_version``, ``tvm_prune_version``,
``target`` (TVM JSON dict, host included), ``target_preset``, ``host_triple``, ``inputs`` and
``outputs`` (name, shape, dtype), ``transforms`` (name + report, in order), ``compile``
(opt level, disabled passes, tuning records, cross compiler, seconds per phase), ``source``
(file name and sha256 of the model), ``files`` (sha256 of every other member).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import PackageError
from ..model import TensorSpec

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class PackageMetadata:
    """The parsed ``metadata.json`` of a package."""

    tvm_version: str
    tvm_prune_version: str
    target: Mapping[str, Any]
    target_preset: str
    host_triple: str
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    transforms: tuple[Mapping[str, Any], ...] = ()
    compile: Mapping[str, Any] = field(default_factory=dict)
    source: Mapping[str, Any] = field(default_factory=dict)
    files: Mapping[str, str] = field(default_factory=dict)
    schema_version: int = SCHEMA_VERSION

    def to_dict(self) -> dict[str, Any]:
        return {
            "schema_version": self.schema_version,
            "tvm_version": self.tvm_version,
            "tvm_prune_version": self.tvm_prune_version,
            "target": dict(self.target),
            "target_preset": self.target_preset,
            "host_triple": self.host_triple,
            "inputs": [spec.to_dict() for spec in self.inputs],
            "outputs": [spec.to_dict() for spec in self.outputs],
            "transforms": [dict(t) for t in self.transforms],
            "compile": dict(self.compile),
            "source": dict(self.source),
            "files": dict(self.files),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> PackageMetadata:
        """Parse and check ``data``; ``where`` names the package in errors."""
        version = data.get("schema_version")
        if not isinstance(version, int):
            raise PackageError(f"{where}: metadata.json has no integer schema_version")
        if version > SCHEMA_VERSION:
            raise PackageError(
                f"{where}: package schema version {version} is newer than this tvm-prune "
                f"reads ({SCHEMA_VERSION}); upgrade tvm-prune"
            )
        try:
            return cls(
                schema_version=version,
                tvm_version=str(data["tvm_version"]),
                tvm_prune_version=str(data["tvm_prune_version"]),
                target=dict(data["target"]),
                target_preset=str(data["target_preset"]),
                host_triple=str(data["host_triple"]),
                inputs=tuple(TensorSpec.from_dict(d) for d in data["inputs"]),
                outputs=tuple(TensorSpec.from_dict(d) for d in data["outputs"]),
                transforms=tuple(dict(t) for t in data.get("transforms", ())),
                compile=dict(data.get("compile", {})),
                source=dict(data.get("source", {})),
                files={str(k): str(v) for k, v in data["files"].items()},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise PackageError(f"{where}: metadata.json is malformed ({exc!r})") from exc
