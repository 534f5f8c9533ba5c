"""Entry point: parse, dispatch to one command module, turn errors into one line + exit code.

Each command module defines ``add_parser(subparsers)`` and ``run(args) -> int``; the work it
calls is imported inside ``run``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Sequence

from . import help as texts

COMMANDS = ("compile", "tune", "prune", "run", "bundle", "targets", "rpc")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="tvm-prune", description=texts.PROG_DESCRIPTION)
    parser.add_argument("-v", "--verbose", action="store_true", help=texts.VERBOSE)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        module = importlib.import_module(f"{__package__}.{name}")
        command = module.add_parser(sub)
        command.add_argument(
            "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help=texts.VERBOSE
        )
        command.set_defaults(run=module.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    # Our progress lines at INFO; other libraries (TVM logs a lot) only with --verbose.
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="tvm-prune: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    logging.getLogger("tvm_prune").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    from ..errors import TvmPruneError

    try:
        return args.run(args)
    except TvmPruneError as exc:
        if args.verbose:
            raise
        print(f"tvm-prune: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("tvm-prune: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        if args.verbose:
            raise
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        print(
            f"tvm-prune: internal error: {type(exc).__name__}: {first[:300]} "
            "(rerun with --verbose for the traceback)",
            file=sys.stderr,
        )
        return 1


def console_entry() -> None:
    sys.exit(main())
