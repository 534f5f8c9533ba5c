"""Old tvmc target strings -> the JSON dict form TVM 0.27 requires.

``"llvm -mtriple=aarch64-linux-gnu -mattr=+neon,+dotprod -num-cores=4"`` becomes
``{"kind": "llvm", "mtriple": "aarch64-linux-gnu", "mattr": ["+neon", "+dotprod"],
"num-cores": 4}``. Option types come from TVM's own schema for the target kind
(``target.ListTargetKindOptionsFromName``), so arrays, integers and booleans are typed as TVM
expects. Anything that cannot be translated is named in the error: an unknown kind, an unknown
option (with the kind's known options), a value of the wrong type, a second target
(``"opencl, llvm"``; give the host in a JSON dict instead).
"""

from __future__ import annotations

import shlex
from typing import Any

import tvm

from ..errors import TargetError


def translate_tvmc_string(text: str) -> dict[str, Any]:
    """Translate one tvmc-style target string; see the module docstring."""
    if "," in text.split(" -", 1)[0] or ", " in text:
        raise TargetError(
            f"target {text!r}: several targets in one string are not supported; "
            'give the host as JSON, e.g. {"kind": "opencl", "host": {"kind": "llvm"}}'
        )
    try:
        tokens = shlex.split(text)
    except ValueError as exc:
        raise TargetError(f"target {text!r}: {exc}") from exc
    kind, options = tokens[0], tokens[1:]
    kinds = [str(k) for k in tvm.get_global_func("target.ListTargetKinds")()]
    if kind not in kinds:
        from .presets import list_presets  # presets reads tvmc strings: imported on use

        raise TargetError(
            f"target {text!r}: unknown target kind '{kind}' (not a preset or tag either); "
            f"presets: {', '.join(list_presets())}; TVM kinds: {', '.join(sorted(kinds))}"
        )
    schema = {
        str(k): str(v)
        for k, v in tvm.get_global_func("target.ListTargetKindOptionsFromName")(kind).items()
    }
    result: dict[str, Any] = {"kind": kind}
    for token in options:
        if not token.startswith("-"):
            raise TargetError(
                f"target {text!r}: cannot read '{token}' (options look like -key=value)"
            )
        key, has_value, value = token.lstrip("-").partition("=")
        if key not in schema or key in ("kind", "host"):
            known = ", ".join(k for k in schema if k not in ("kind", "host"))
            raise TargetError(
                f"target {text!r}: unknown option '-{key}' for kind {kind}; known: {known}"
            )
        result[key] = _typed(text, key, schema[key], value if has_value else None)
    return result


def _typed(text: str, key: str, type_name: str, value: str | None) -> Any:
    if type_name == "bool":
        if value is None or value.lower() in ("1", "true"):
            return True
        if value.lower() in ("0", "false"):
            return False
    elif value is None:
        pass
    elif type_name.startswith("Array"):
        return [item for item in value.split(",") if item]
    elif type_name == "int":
        try:
            return int(value)
        except ValueError:
            pass
    elif type_name == "str":
        return value
    raise TargetError(f"target {text!r}: option -{key} needs a {type_name} value, got {value!r}")
