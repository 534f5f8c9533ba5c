"""Package reading refuses anything unsafe or tampered with; writing is atomic."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import pytest

from tvm_prune import Package
from tvm_prune.errors import PackageError
from tvm_prune.package.archive import write_atomic


def _members(path: Path) -> dict[str, bytes]:
    with tarfile.open(path) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers()}


def _write_tar(path: Path, entries: list[tarfile.TarInfo | tuple[str, bytes]]) -> Path:
    with tarfile.open(path, "w") as tar:
        for entry in entries:
            if isinstance(entry, tarfile.TarInfo):
                tar.addfile(entry)
            else:
                name, data = entry
                info = tarfile.TarInfo(name)
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return path


def test_metadata_lists_every_member_with_its_checksum(matmul_package):
    import hashlib

    members = _members(matmul_package.path)
    assert set(members) == {"metadata.json", "mod.so"}
    meta = json.loads(members["metadata.json"])
    assert meta["schema_version"] == 1
    assert meta["files"] == {"mod.so": hashlib.sha256(members["mod.so"]).hexdigest()}
    assert meta["inputs"] == [{"name": "x", "shape": [1, 64], "dtype": "float32"}]
    assert meta["outputs"] == [{"name": "y", "shape": [1, 32], "dtype": "float32"}]
    assert meta["target"]["kind"] == "llvm"
    assert meta["tvm_version"].startswith("0.27")
    assert len(meta["source"]["sha256"]) == 64


def test_round_trip(matmul_package):
    loaded = Package.load(matmul_package.path)
    assert loaded.metadata == matmul_package.metadata


def test_tampered_member(matmul_package, tmp_path):
    members = _members(matmul_package.path)
    library = bytearray(members["mod.so"])
    library[len(library) // 2] ^= 0xFF
    path = _write_tar(
        tmp_path / "t.tar",
        [("metadata.json", members["metadata.json"]), ("mod.so", bytes(library))],
    )
    with pytest.raises(PackageError, match="member 'mod.so' does not match its sha256"):
        Package.load(path)


@pytest.mark.parametrize("name", ["../evil.so", "/etc/evil.so", "sub/../../evil.so", "a\\b"])
def test_unsafe_member_names(matmul_package, tmp_path, name):
    members = _members(matmul_package.path)
    path = _write_tar(tmp_path / "t.tar", [*members.items(), (name, b"x")])
    with pytest.raises(PackageError, match="unsafe path"):
        Package.load(path)


@pytest.mark.parametrize("kind", [tarfile.SYMTYPE, tarfile.LNKTYPE, tarfile.DIRTYPE])
def test_links_and_directories_are_refused(matmul_package, tmp_path, kind):
    link = tarfile.TarInfo("mod.so")
    link.type = kind
    link.linkname = "/etc/passwd"
    members = _members(matmul_package.path)
    path = _write_tar(tmp_path / "t.tar", [("metadata.json", members["metadata.json"]), link])
    with pytest.raises(PackageError, match="'mod.so' is not a regular file"):
        Package.load(path)


def test_unlisted_and_missing_members(matmul_package, tmp_path):
    members = _members(matmul_package.path)
    extra = _write_tar(tmp_path / "extra.tar", [*members.items(), ("notes.txt", b"hi")])
    with pytest.raises(PackageError, match="not listed in metadata: notes.txt"):
        Package.load(extra)
    missing = _write_tar(tmp_path / "missing.tar", [("metadata.json", members["metadata.json"])])
    with pytest.raises(PackageError, match="member 'mod.so' is missing"):
        Package.load(missing)


def test_not_a_package(tmp_path, matmul_model):
    with pytest.raises(PackageError, match="not a gzip or tar file"):
        Package.load(matmul_model)
    no_meta = _write_tar(tmp_path / "n.tar", [("mod.so", b"x")])
    with pytest.raises(PackageError, match="no metadata.json"):
        Package.load(no_meta)
    with pytest.raises(PackageError, match="no such file"):
        Package.load(tmp_path / "absent.tar")


def test_newer_schema_is_refused(matmul_package, tmp_path):
    members = _members(matmul_package.path)
    meta = json.loads(members["metadata.json"])
    meta["schema_version"] = 99
    path = _write_tar(
        tmp_path / "t.tar",
        [("metadata.json", json.dumps(meta).encode()), ("mod.so", members["mod.so"])],
    )
    with pytest.raises(PackageError, match="schema version 99 is newer"):
        Package.load(path)


def test_atomic_write_leaves_nothing_on_failure(tmp_path):
    target = tmp_path / "out.bin"

    def fail(handle):
        handle.write(b"partial")
        raise RuntimeError("disk on fire")

    with pytest.raises(RuntimeError):
        write_atomic(target, fail)
    assert list(tmp_path.iterdir()) == []


def test_atomic_write_keeps_the_old_file_on_failure(tmp_path):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        write_atomic(target, lambda handle: (_ for _ in ()).throw(RuntimeError("x")))
    assert target.read_bytes() == b"old"
    assert list(tmp_path.iterdir()) == [target]
