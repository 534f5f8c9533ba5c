"""Target presets: one JSON file per device under ``targets/``.

A preset file holds ``description``, ``target`` (TVM's JSON dict form), ``host`` (the same, or
null), ``cross_compiler`` (a compiler driver on PATH, ``"ndk"`` for the Android NDK, or null for
the host compiler), ``cross_compiler_options``, ``rpc_key``, ``schedule_set`` and, optionally,
``conv_groups`` (the grouped convs the device runs) and ``winograd`` (where Winograd convs pay).
Adding a device means adding a file; nothing here lists devices.

``"mcpu": "native"`` in a preset is replaced, when the preset loads, by the CPU and triple LLVM
detects on this machine, so a package records the concrete CPU it was built for.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from importlib import resources
from typing import Any

import tvm

from ..errors import TargetError
from .tvmc_string import translate_tvmc_string

logger = logging.getLogger(__name__)

_PRESET_KEYS = {
    "description",
    "target",
    "host",
    "cross_compiler",
    "cross_compiler_options",
    "rpc_key",
    "schedule_set",
    "conv_groups",
    "winograd",
}


@dataclass(frozen=True)
class ConvGroupSupport:
    """Which conv group layouts a device runs well (the preset's optional ``conv_groups``).

    ``allowed``: ``dense`` (groups 1), ``depthwise`` (one input channel per group) and
    ``grouped`` (anything between). ``min_channels_per_group``: a grouped conv with fewer input
    channels per group is not run as such (its vectors would be mostly empty).
    """

    allowed: tuple[str, ...] = ("dense", "grouped", "depthwise")
    min_channels_per_group: int = 1

    def runs(self, groups: int, in_channels: int) -> bool:
        """Whether a conv with ``groups`` groups over ``in_channels`` inputs runs as it is."""
        per_group = in_channels // groups
        kind = "dense" if groups == 1 else "depthwise" if per_group == 1 else "grouped"
        if kind not in self.allowed:
            return False
        return kind != "grouped" or per_group >= self.min_channels_per_group

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], what: str) -> ConvGroupSupport:
        unknown = sorted(set(data) - {"allowed", "min_channels_per_group"})
        kinds = tuple(data.get("allowed", cls.allowed))
        if unknown or not set(kinds) <= set(cls.allowed) or "dense" not in kinds:
            raise TargetError(
                f"{what}: conv_groups needs 'allowed' from dense/grouped/depthwise (with dense) "
                f"and 'min_channels_per_group'; got {dict(data)}"
            )
        return cls(kinds, int(data.get("min_channels_per_group", 1)))


@dataclass(frozen=True)
class WinogradPolicy:
    """Which 3x3 stride-1 convs a device runs as Winograd (the preset's optional ``winograd``).

    ``tiles``: the output tile sides to use, in order of preference (4: F(4x4, 3x3), 2:
    F(2x2, 3x3)); ``min_channels``: convs with fewer input or output channels stay direct.
    Both come from ``bench/winograd.py`` on the device: where it measured faster than the
    direct conv rule.
    """

    tiles: tuple[int, ...] = (4,)
    min_channels: int = 64

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], what: str) -> WinogradPolicy:
        tiles = tuple(data.get("tiles", cls.tiles))
        if sorted(set(data) - {"tiles", "min_channels"}) or not tiles or set(tiles) - {2, 4}:
            raise TargetError(
                f"{what}: winograd needs 'tiles' from 4/2 and 'min_channels'; got {dict(data)}"
            )
        return cls(tiles, int(data.get("min_channels", cls.min_channels)))


@dataclass(frozen=True)
class TargetPreset:
    """A device: its TVM target (with its host), cross compiler, RPC key, schedule set, and the
    conv forms it runs well (grouped, Winograd)."""

    name: str
    target: tvm.target.Target
    description: str = ""
    cross_compiler: str | None = None
    cross_compiler_options: tuple[str, ...] = ()
    rpc_key: str | None = None
    schedule_set: str = "generic"
    source: str = field(default="preset", compare=False)
    conv_groups: ConvGroupSupport | None = None
    winograd: WinogradPolicy | None = None

    @property
    def host_triple(self) -> str:
        """The LLVM triple of the code that runs on the CPU side."""
        cpu = self.target.host if self.target.host is not None else self.target
        return str(cpu.attrs.get("mtriple", "")) or _system_triple()

    def describe(self) -> str:
        """One line: the preset name and the target attributes a user would write."""
        shown = {
            key: value
            for key, value in export_target(self.target).items()
            if key not in ("tag", "keys", "host") and not key.startswith("feature.")
        }
        return f"{self.name} {json.dumps(shown)}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "source": self.source,
            "description": self.description,
            "target": export_target(self.target),
            "cross_compiler": self.cross_compiler,
            "cross_compiler_options": list(self.cross_compiler_options),
            "rpc_key": self.rpc_key,
            "schedule_set": self.schedule_set,
            **({"conv_groups": asdict(self.conv_groups)} if self.conv_groups else {}),
            **({"winograd": asdict(self.winograd)} if self.winograd else {}),
        }


def list_presets() -> list[str]:
    """Names of the presets shipped with tvm-prune, sorted."""
    folder = resources.files("tvm_prune.data") / "targets"
    return sorted(p.name[: -len(".json")] for p in folder.iterdir() if p.name.endswith(".json"))


def load_preset(name: str) -> TargetPreset:
    """Read ``targets/<name>.json``."""
    path = resources.files("tvm_prune.data") / "targets" / f"{name}.json"
    if not path.is_file():
        raise TargetError(f"unknown target preset '{name}'; presets: {', '.join(list_presets())}")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise TargetError(f"target preset {name}: {path.name} is not valid JSON ({exc})") from exc
    unknown = sorted(set(data) - _PRESET_KEYS)
    if unknown:
        raise TargetError(f"target preset {name}: unknown key(s) {', '.join(unknown)}")
    target = _make_target(data["target"], data.get("host"), what=f"target preset {name}")
    return TargetPreset(
        name=name,
        target=target,
        description=data.get("description", ""),
        cross_compiler=data.get("cross_compiler"),
        cross_compiler_options=tuple(data.get("cross_compiler_options", ())),
        rpc_key=data.get("rpc_key"),
        schedule_set=data.get("schedule_set", "generic"),
        conv_groups=(
            ConvGroupSupport.from_dict(data["conv_groups"], f"target preset {name}")
            if "conv_groups" in data
            else None
        ),
        winograd=(
            WinogradPolicy.from_dict(data["winograd"], f"target preset {name}")
            if "winograd" in data
            else None
        ),
    )


def resolve_target(spec: str | Mapping[str, Any] | TargetPreset) -> TargetPreset:
    """Turn what a user wrote into a preset, trying in order, and log which form matched.

    1. a :class:`TargetPreset` (returned as is);
    2. a preset name from ``targets/``;
    3. a JSON dict (a ``dict`` or a string starting with ``{``);
    4. a TVM target tag such as ``qcom/hexagon-v68``;
    5. an old tvmc target string such as ``"llvm -mtriple=aarch64-linux-gnu -mattr=+neon"``.

    Forms 3-5 become an ad-hoc preset named after the target kind with no cross compiler.
    """
    if isinstance(spec, TargetPreset):
        return spec
    if isinstance(spec, Mapping):
        return _adhoc(_make_target(dict(spec), None, what="target"), "json")
    text = spec.strip()
    if not text:
        raise TargetError("empty target")
    if text in list_presets():
        logger.debug("target %r: preset", text)
        return load_preset(text)
    if text.startswith("{"):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TargetError(f"target {text!r} is not valid JSON ({exc})") from exc
        logger.debug("target: JSON dict")
        return _adhoc(_make_target(data, None, what="target"), "json")
    if "/" in text and " " not in text:
        if text not in tvm.target.list_tags():
            raise TargetError(
                f"unknown target '{text}': not a preset ({', '.join(list_presets())}) "
                "nor a TVM target tag"
            )
        logger.debug("target %r: TVM tag", text)
        return _adhoc(tvm.target.Target(text), "tag")
    data = translate_tvmc_string(text)
    logger.info("target %r: tvmc string, translated to %s", text, json.dumps(data))
    return _adhoc(_make_target(data, None, what=f"target {text!r}"), "tvmc-string")


def _adhoc(target: tvm.target.Target, source: str) -> TargetPreset:
    return TargetPreset(name=str(target.kind.name), target=target, source=source)


def _make_target(
    data: Mapping[str, Any], host: Mapping[str, Any] | None, *, what: str
) -> tvm.target.Target:
    data = _resolve_native(dict(data))
    if host is not None:
        data["host"] = _resolve_native(dict(host))
    try:
        return tvm.target.Target(data)
    except (ValueError, TypeError, RuntimeError) as exc:
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise TargetError(f"{what}: {message[:300]}") from exc


def _resolve_native(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("kind") == "llvm" and data.get("mcpu") == "native":
        data["mcpu"] = tvm.get_global_func("target.llvm_get_system_cpu")()
        data.setdefault("mtriple", _system_triple())
    return data


def _system_triple() -> str:
    return str(tvm.get_global_func("target.llvm_get_system_triple")())


def export_target(target: tvm.target.Target) -> dict[str, Any]:
    """The target as a plain JSON-able dict (tuples become lists)."""
    return json.loads(json.dumps(dict(target.export()), default=_jsonable))


def _jsonable(value: Any) -> Any:
    if isinstance(value, tvm.target.Target):
        return dict(value.export())
    if hasattr(value, "items"):
        return dict(value.items())
    return list(value)


def preset_with_cross_compiler(
    preset: TargetPreset, compiler: str | None, options: tuple[str, ...] | None
) -> TargetPreset:
    """``preset`` with the user's ``--cross-compiler`` / ``--cross-compiler-options``, if given."""
    return replace(
        preset,
        cross_compiler=preset.cross_compiler if compiler is None else compiler,
        cross_compiler_options=preset.cross_compiler_options if options is None else options,
    )
