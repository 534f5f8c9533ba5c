"""Target presets and target resolution: every preset builds, exports and round-trips."""

from __future__ import annotations

import json

import pytest
import tvm

from tvm_prune.errors import TargetError
from tvm_prune.target import list_presets, load_preset, resolve_target, translate_tvmc_string
from tvm_prune.target.presets import export_target

PRESETS = ["aarch64-linux", "android-arm64", "hexagon-v68", "host", "mali-g76", "mali-g78"]


def test_shipped_presets():
    assert list_presets() == PRESETS


@pytest.mark.parametrize("name", PRESETS)
def test_preset_export_round_trip(name):
    """The exported JSON builds the same target again, and survives json.dumps."""
    preset = load_preset(name)
    exported = export_target(preset.target)
    again = tvm.target.Target(json.loads(json.dumps(exported)))
    assert export_target(again) == exported
    assert again.kind.name == preset.target.kind.name


def test_host_preset_resolves_native_cpu():
    target = load_preset("host").target
    assert target.attrs["mcpu"] == tvm.get_global_func("target.llvm_get_system_cpu")()
    assert target.attrs["mtriple"] == tvm.get_global_func("target.llvm_get_system_triple")()


def test_mali_preset_has_an_aarch64_host():
    target = load_preset("mali-g76").target
    assert target.kind.name == "opencl"
    assert target.host.attrs["mtriple"] == "aarch64-linux-gnu"
    assert load_preset("mali-g76").host_triple == "aarch64-linux-gnu"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "llvm -mtriple=aarch64-linux-gnu -mattr=+neon",
            {"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon"]},
        ),
        (
            "llvm -mcpu=cortex-a76 -mattr=+neon,+dotprod -num-cores=4 -fast-math",
            {
                "kind": "llvm",
                "mcpu": "cortex-a76",
                "mattr": ["+neon", "+dotprod"],
                "num-cores": 4,
                "fast-math": True,
            },
        ),
        ("opencl -device=mali", {"kind": "opencl", "device": "mali"}),
    ],
)
def test_tvmc_string_translation(text, expected):
    assert translate_tvmc_string(text) == expected
    assert resolve_target(text).source == "tvmc-string"


@pytest.mark.parametrize("name", ["aarch64-linux", "android-arm64", "host"])
def test_tvmc_string_round_trip_of_llvm_presets(name):
    """A preset written as a tvmc string resolves to the same target as the preset."""
    exported = export_target(load_preset(name).target)
    parts = [exported["kind"]]
    for key in ("mtriple", "mcpu", "mattr", "num-cores"):
        if key in exported:
            value = exported[key]
            parts.append(f"-{key}={','.join(value) if isinstance(value, list) else value}")
    assert export_target(resolve_target(" ".join(parts)).target) == exported


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense", "unknown target kind 'nonsense'"),
        ("llvm -mfoo=1", "unknown option '-mfoo' for kind llvm; known: .*mattr"),
        ("llvm -num-cores=four", "option -num-cores needs a int value, got 'four'"),
        ("llvm mcpu", "cannot read 'mcpu'"),
        ("opencl, llvm", "several targets in one string"),
        ('{"kind": "llvm", "bogus": 1}', "Unknown config option 'bogus'"),
        ('{"kind": "llvm"', "is not valid JSON"),
        ("vendor/not-a-tag", "unknown target 'vendor/not-a-tag'"),
        ("", "empty target"),
    ],
)
def test_target_errors_name_the_problem(text, message):
    with pytest.raises(TargetError, match=message):
        resolve_target(text)


def test_unknown_preset_lists_the_presets():
    with pytest.raises(TargetError, match="unknown target preset 'pixel9'; presets: aarch64-linux"):
        load_preset("pixel9")


def test_resolution_order():
    assert resolve_target("host").source == "preset"
    assert resolve_target({"kind": "llvm"}).source == "json"
    assert resolve_target('{"kind": "llvm"}').source == "json"
    assert resolve_target("qcom/hexagon-v68").source == "tag"
    preset = load_preset("aarch64-linux")
    assert resolve_target(preset) is preset
