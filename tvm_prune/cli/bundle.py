"""``tvm-prune bundle PACKAGE -o DIR``: what a Linux device needs to run a package without
Python (model library, TVM runtime libraries, C++ runner, manifest)."""

from __future__ import annotations

import argparse
import logging

from . import help as texts

logger = logging.getLogger("tvm_prune")


def add_parser(sub) -> argparse.ArgumentParser:
    parser = sub.add_parser("bundle", help=texts.BUNDLE, description=texts.BUNDLE)
    parser.add_argument("package", help=texts.BUNDLE_PACKAGE)
    parser.add_argument("-o", "--output", required=True, help=texts.BUNDLE_OUTPUT)
    parser.add_argument("--target", help=texts.BUNDLE_TARGET)
    parser.add_argument("--cxx", help=texts.BUNDLE_CXX)
    return parser


def run(args: argparse.Namespace) -> int:
    from ..errors import PackageError
    from ..package import Package
    from ..package.bundle import write_bundle

    package = Package.load(args.package)
    built_for = package.metadata.target_preset
    if args.target and args.target != built_for:
        raise PackageError(
            f"{args.package} was compiled for {built_for}, not {args.target}; "
            f"compile it with --target {args.target} first"
        )
    logger.info("bundling %s for %s (runtime libraries, C++ runner)", args.package, built_for)
    manifest = write_bundle(package, args.output, cxx=args.cxx)
    logger.info("wrote %s: %s", args.output, ", ".join(manifest["files"]))
    print(f"run on the device: cd {args.output} && {manifest['run']}")
    return 0
