"""``python -m tvm_prune``: the same as the ``tvm-prune`` command."""

from .cli.main import console_entry

console_entry()
