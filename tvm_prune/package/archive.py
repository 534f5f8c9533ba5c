"""Writing and reading the package tar safely.

The tar is gzip-compressed (DEFLATE, level 6, no timestamp, so the same model gives the same
bytes). Compression is how pruned weights are stored compactly: the library holds the weights as
constants already repacked for its kernels at compile time, and the zeros pruning leaves there
compress to almost nothing (a float32 weight at 70 % sparsity to about 35 % of its size, as small
as a bitmask plus values, while dense weights stay at about 92 %). Loading expands it.

Writing goes to a temporary file next to the destination and is renamed into place only when
complete, so a failed or interrupted write leaves nothing behind. Reading refuses, before
extracting anything: members that are not regular files (links, devices, directories), absolute
names, names with ``..`` or backslashes, members not listed in ``metadata.json`` and checksum
mismatches.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import tarfile
import tempfile
import zlib
from collections.abc import Mapping
from pathlib import Path, PurePosixPath

from ..errors import PackageError, TvmPruneError, not_a_file
from .metadata import PackageMetadata

METADATA_MEMBER = "metadata.json"
COMPRESS_LEVEL = 6  # level 9 takes 9x longer for 1.6 % smaller weights


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def check_writable(path: Path) -> None:
    """Refuse, with one line, an output ``path`` that is a directory or whose folder cannot be
    made (a file is in the way): before the work that produces it, not after."""
    path = Path(path)
    if path.is_dir():
        raise TvmPruneError(f"{path}: is a directory, not a file to write")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise TvmPruneError(f"{path}: cannot make its folder ({exc.strerror})") from exc


def write_atomic(path: Path, write) -> None:
    """Call ``write(binary_file)`` on a temporary file, then rename it to ``path``."""
    path = Path(path)
    check_writable(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    except OSError as exc:
        raise TvmPruneError(f"{path}: cannot write there ({exc.strerror})") from exc
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_package(path: Path, members: Mapping[str, bytes], metadata: PackageMetadata) -> None:
    """Write ``members`` plus ``metadata.json`` (whose ``files`` must list every member)."""
    if set(metadata.files) != set(members):
        raise ValueError("metadata.files must list exactly the package members")
    meta_bytes = json.dumps(metadata.to_dict(), indent=2, sort_keys=True).encode()

    def write(handle) -> None:
        with (
            gzip.GzipFile(fileobj=handle, mode="wb", compresslevel=COMPRESS_LEVEL, mtime=0) as gz,
            tarfile.open(fileobj=gz, mode="w") as tar,
        ):
            for name, data in [(METADATA_MEMBER, meta_bytes), *sorted(members.items())]:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mode = 0o644
                tar.addfile(info, io.BytesIO(data))

    write_atomic(path, write)


def read_package(path: Path) -> tuple[PackageMetadata, dict[str, bytes]]:
    """Read and check a package; return its metadata and its other members' bytes."""
    path = Path(path)
    where = str(path)
    if not path.is_file():
        raise PackageError(not_a_file(path))
    try:
        tar = tarfile.open(path, mode="r:*")
    except (tarfile.TarError, OSError) as exc:
        # tarfile's message lists every compression it tried, one per line.
        raise PackageError(f"{where}: not a tvm-prune package (not a gzip or tar file)") from exc
    with tar:
        contents: dict[str, bytes] = {}
        try:
            for info in tar.getmembers():
                _check_member(where, info)
                if info.name in contents:
                    raise PackageError(f"{where}: member '{info.name}' appears twice")
                contents[info.name] = tar.extractfile(info).read()
        except (tarfile.TarError, OSError, EOFError, zlib.error) as exc:
            raise PackageError(f"{where}: corrupt package ({type(exc).__name__}: {exc})") from exc
    if METADATA_MEMBER not in contents:
        raise PackageError(f"{where}: not a tvm-prune package (no {METADATA_MEMBER})")
    try:
        raw = json.loads(contents.pop(METADATA_MEMBER))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise PackageError(f"{where}: {METADATA_MEMBER} is not valid JSON ({exc})") from exc
    if not isinstance(raw, dict):
        raise PackageError(f"{where}: {METADATA_MEMBER} is not a JSON object")
    metadata = PackageMetadata.from_dict(raw, where=where)
    unlisted = sorted(set(contents) - set(metadata.files))
    if unlisted:
        raise PackageError(f"{where}: member(s) not listed in metadata: {', '.join(unlisted)}")
    for name, expected in metadata.files.items():
        if name not in contents:
            raise PackageError(f"{where}: member '{name}' is missing")
        if sha256_bytes(contents[name]) != expected:
            raise PackageError(f"{where}: member '{name}' does not match its sha256 (tampered?)")
    return metadata, contents


def _check_member(where: str, info: tarfile.TarInfo) -> None:
    name = info.name
    pure = PurePosixPath(name)
    if not info.isfile():
        raise PackageError(f"{where}: member '{name}' is not a regular file (link or device)")
    if pure.is_absolute() or ".." in pure.parts or "\\" in name or not name:
        raise PackageError(f"{where}: member '{name}' has an unsafe path")
    if len(pure.parts) != 1:
        raise PackageError(f"{where}: member '{name}' is not at the top level")
