"""The ``tvm-prune`` command line: ``main(argv) -> exit code``; one module per command."""
