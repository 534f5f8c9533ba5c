"""The installed package, not only a checkout, finds targets/ and schedules/."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def wheel(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(out), str(REPO)],
        check=True,
        capture_output=True,
    )
    (path,) = out.glob("tvm_prune-*.whl")
    return path


def test_wheel_carries_presets_and_records(wheel):
    names = set(zipfile.ZipFile(wheel).namelist())
    for preset in (REPO / "targets").glob("*.json"):
        assert f"tvm_prune/data/targets/{preset.name}" in names
    assert "tvm_prune/data/schedules/README.md" in names


def test_installed_copy_lists_presets(wheel, tmp_path):
    site = tmp_path / "site"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "-q",
            "--no-deps",
            "--target",
            str(site),
            str(wheel),
        ],
        check=True,
        capture_output=True,
    )
    code = (
        "import tvm_prune, tvm_prune.target as t; "
        "print(tvm_prune.__file__); print(','.join(t.list_presets()))"
    )
    # Run outside the checkout with the installed copy first on the path (TVM still comes from
    # this environment's site-packages).
    env = {**os.environ, "PYTHONPATH": str(site)}
    result = subprocess.run(
        [sys.executable, "-c", code],
        cwd=tmp_path,
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    location, presets = result.stdout.split()
    assert location.startswith(str(site))
    assert presets.split(",") == sorted(p.stem for p in (REPO / "targets").glob("*.json"))
