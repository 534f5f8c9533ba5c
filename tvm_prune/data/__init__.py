"""Data shipped with tvm-prune: ``targets`` (presets) and ``schedules`` (tuning records).

Both live at the repository root; this folder holds symlinks to them, so a checkout, an
editable install and a wheel all find them through ``importlib.resources``.
"""
