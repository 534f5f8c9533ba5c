"""Data shipped with tvm-prune: ``targets`` (presets), ``schedules`` (tuning records) and
``cross_compile`` (toolchain and device set-up scripts).

All three live at the repository root; this folder holds symlinks to them, so a checkout, an
editable install and a wheel all find them through ``importlib.resources``.
"""
