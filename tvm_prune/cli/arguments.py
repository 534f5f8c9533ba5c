"""``type=`` converters (command-line strings to typed values, with argparse-style errors) and
the option groups several commands share."""

from __future__ import annotations

import argparse
import re
import shlex

_SHAPE_ITEM = re.compile(r"\s*([^:\s][^:]*?)\s*:\s*\[([^\]]*)\]\s*(?:,|$)")


def input_shapes(text: str) -> dict[str, tuple[int, ...]]:
    """``"name:[1,3,224,224],other:[1,10]"`` -> ``{"name": (1, 3, 224, 224), ...}``.

    Names may contain any character but ``:``; dimensions are positive integers.
    """
    shapes: dict[str, tuple[int, ...]] = {}
    position = 0
    text = text.strip()
    while position < len(text):
        match = _SHAPE_ITEM.match(text, position)
        if match is None:
            raise argparse.ArgumentTypeError(
                f"cannot read input shapes at '{text[position:]}'; "
                'expected "name:[1,3,224,224],other:[...]"'
            )
        name, dims = match.group(1), match.group(2)
        try:
            shape = tuple(int(d) for d in dims.split(",") if d.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"input '{name}': dimensions [{dims}] must be integers"
            )
        if not shape or any(d <= 0 for d in shape):
            raise argparse.ArgumentTypeError(f"input '{name}': shape [{dims}] must be positive")
        if name in shapes:
            raise argparse.ArgumentTypeError(f"input '{name}' is given twice")
        shapes[name] = shape
        position = match.end()
    if not shapes:
        raise argparse.ArgumentTypeError("no input shapes given")
    return shapes


def compiler_options(text: str) -> tuple[str, ...]:
    """A quoted option string split the way a shell would."""
    try:
        return tuple(shlex.split(text))
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"cannot split compiler options: {exc}")


def pass_names(text: str) -> list[str]:
    """``"A,B"`` -> ``["A", "B"]``."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no pass name given")
    return names


def _number(name: str, kind: type, noun: str, accepts, requirement: str):
    """An argparse ``type``: ``text`` read as ``kind``, refused unless ``accepts(value)``."""

    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"'{text}' is not {noun}") from None
        if not accepts(value):  # NaN fails every bound
            raise argparse.ArgumentTypeError(f"{value} must be {requirement}")
        return value

    parse.__name__ = name
    return parse


positive_int = _number("positive_int", int, "an integer", lambda v: v >= 1, "at least 1")
non_negative_int = _number("non_negative_int", int, "an integer", lambda v: v >= 0, ">= 0")
non_negative_float = _number("non_negative_float", float, "a number", lambda v: v >= 0, ">= 0")
fraction = _number(
    "fraction", float, "a number", lambda v: 0 < v < 1, "between 0 and 1 (exclusive)"
)


def add_rpc_options(parser: argparse.ArgumentParser, *, tracker_help: str) -> None:
    """tvmc's device options: ``--rpc-tracker HOST:PORT --rpc-key K``, or ``--rpc-host`` and
    ``--rpc-port``."""
    from . import help as texts

    parser.add_argument("--rpc-tracker", metavar="HOST:PORT", help=tracker_help)
    parser.add_argument("--rpc-key", help=texts.RPC_KEY)
    parser.add_argument("--rpc-host", help=texts.RPC_HOST)
    parser.add_argument("--rpc-port", type=int, help=texts.RPC_PORT)


def rpc_config(args: argparse.Namespace):
    """The :class:`~tvm_prune.rpc.RpcConfig` the options of :func:`add_rpc_options` ask for
    (environment variables fill what is not given), or None for this machine."""
    from ..rpc import RpcConfig

    return RpcConfig.resolve(
        tracker=args.rpc_tracker, key=args.rpc_key, host=args.rpc_host, port=args.rpc_port
    )
