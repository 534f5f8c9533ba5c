"""Device presets and target resolution.

In: a preset name (``targets/<name>.json``), a JSON target dict, a TVM target tag or an old
tvmc-style target string. Out: a :class:`TargetPreset` whose ``target`` is a ``tvm.target.Target``.
"""

from .presets import TargetPreset, list_presets, load_preset, resolve_target
from .tvmc_string import translate_tvmc_string

__all__ = ["TargetPreset", "list_presets", "load_preset", "resolve_target", "translate_tvmc_string"]
