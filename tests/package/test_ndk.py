"""The Android NDK path: which compiler is used, its command line, and the error without one.

No NDK can be installed here, so a fake NDK tree holds a ``clang++`` script that records its
arguments and links with the aarch64 GNU toolchain instead.
"""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

import tvm_prune
from tvm_prune.errors import CompileError
from tvm_prune.package.build import ndk_compiler
from tvm_prune.target import load_preset

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def _fake_ndk(root: Path) -> tuple[Path, Path]:
    bin_dir = root / "toolchains/llvm/prebuilt/linux-x86_64/bin"
    bin_dir.mkdir(parents=True)
    log = root / "args.txt"
    compiler = bin_dir / "aarch64-linux-android24-clang++"
    compiler.write_text(f'#!/bin/sh\necho "$@" > {log}\nexec aarch64-linux-gnu-g++ "$@"\n')
    compiler.chmod(compiler.stat().st_mode | stat.S_IXUSR)
    return compiler, log


def test_android_ndk_home_gives_the_api_level_compiler(tmp_path, monkeypatch):
    compiler, log = _fake_ndk(tmp_path / "ndk")
    monkeypatch.delenv("TVM_NDK_CC", raising=False)
    monkeypatch.setenv("ANDROID_NDK_HOME", str(tmp_path / "ndk"))
    out = tmp_path / "android.tar"
    package = tvm_prune.compile(DIGITS / "digits_cnn.onnx", target="android-arm64", output=out)
    args = log.read_text().split()
    assert {"-shared", "-fPIC", "-o"} <= set(args)
    assert args[args.index("-o") + 1].endswith(".so")
    assert package.metadata.host_triple == "aarch64-linux-android"
    assert package.members["mod.so"][:4] == b"\x7fELF"
    assert ndk_compiler(load_preset("android-arm64")) == str(compiler)


def test_tvm_ndk_cc_wins(tmp_path):
    compiler, _ = _fake_ndk(tmp_path / "ndk")
    env = {"TVM_NDK_CC": str(compiler), "ANDROID_NDK_HOME": "/nonexistent"}
    assert ndk_compiler(load_preset("android-arm64"), env) == str(compiler)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({}, "needs the Android NDK: set ANDROID_NDK_HOME"),
        ({"ANDROID_NDK_HOME": "/nonexistent"}, "has no aarch64-linux-android24-clang\\+\\+"),
        ({"TVM_NDK_CC": "/nonexistent/clang++"}, "is not an executable compiler"),
    ],
)
def test_missing_ndk_is_a_clear_error_before_building(tmp_path, monkeypatch, env, message):
    for name in ("TVM_NDK_CC", "ANDROID_NDK_HOME"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "android.tar"
    with pytest.raises(CompileError, match=message):
        tvm_prune.compile(DIGITS / "digits_cnn.onnx", target="android-arm64", output=out)
    assert not out.exists()
