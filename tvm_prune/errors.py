"""Errors a user can act on.

Every error raised for bad input is a :class:`TvmPruneError`. Its message is one line that names
the thing at fault (file, op, input, target, package member); the CLI prints it and exits with
``exit_code``. Anything else escaping the CLI is a bug in tvm-prune.
"""

from pathlib import Path


class TvmPruneError(Exception):
    """Bad input or an unsupported request; the message says which and where."""

    exit_code = 2


class ModelLoadError(TvmPruneError):
    """The model file is missing, unreadable, not ONNX or not valid ONNX."""


class UnsupportedOpError(TvmPruneError):
    """The model uses operators the importer cannot convert."""


class InputShapeError(TvmPruneError):
    """Input shapes are dynamic and not given, or given for unknown inputs."""


class TargetError(TvmPruneError):
    """A target preset, JSON target or target string that cannot be resolved."""


class CompileError(TvmPruneError):
    """Compilation or export failed (for example a missing cross compiler)."""


class PackageError(TvmPruneError):
    """A package that is malformed, tampered with or unsafe to extract."""


class RunError(TvmPruneError):
    """Inputs that do not match the package, or a package that cannot run on this device."""


def not_a_file(path: Path) -> str:
    """The message for an input ``path`` that is not a readable file."""
    return f"{path}: is a directory, not a file" if Path(path).is_dir() else f"{path}: no such file"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type's name), for a one-line error."""
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


def tvm_error_line(exc: BaseException) -> str:
    """The useful line of a TVM error: the first one naming an error or a failed check, else the
    first one, skipping backtrace lines (TVM's message may be followed by the IR it refers to)."""
    lines = [
        line.strip()
        for line in str(exc).splitlines()
        if line.strip() and not line.startswith((" ", "\t", "Traceback", "File "))
    ]
    flagged = [line for line in lines if "error" in line.lower() or "Check failed" in line]
    return (flagged or lines or [type(exc).__name__])[0][:300]
