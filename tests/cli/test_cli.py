"""The command line: exit codes, one-line errors, files written only when complete."""

from __future__ import annotations

import argparse
import gzip
import io
import json
import re
import tarfile

import numpy as np
import pytest

import tvm_prune
from tvm_prune.cli import arguments
from tvm_prune.cli.main import main
from tvm_prune.testing import models
from tvm_prune.testing.ort import assert_outputs_close, run_ort


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert err, "no error printed"
    assert "Traceback" not in "\n".join(err)
    return err[-1]


def test_compile_then_run_with_npz(tmp_path, conv_model, capsys):
    out = tmp_path / "conv.tar"
    assert main(["compile", str(conv_model), "--target", "host", "-o", str(out)]) == 0
    with tarfile.open(out) as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    assert meta["target_preset"] == "host"
    assert meta["compile"]["opt_level"] == 3

    x = np.random.default_rng(3).standard_normal((1, 3, 16, 16)).astype(np.float32)
    np.savez(tmp_path / "in.npz", x=x)
    assert (
        main(
            [
                "run",
                str(out),
                "--inputs",
                str(tmp_path / "in.npz"),
                "--outputs",
                str(tmp_path / "out.npz"),
            ]
        )
        == 0
    )
    with np.load(tmp_path / "out.npz") as data:
        outputs = {name: data[name] for name in data.files}
    # A float32 3x3 conv with its epilogue, summed in another order than ORT's.
    assert_outputs_close(outputs, run_ort(conv_model, {"x": x}), rel_tol=1e-4)


def test_run_print_top_and_time(matmul_package, matmul_model, capsys):
    assert (
        main(
            [
                "run",
                str(matmul_package.path),
                "--fill-mode",
                "ones",
                "--print-top",
                "3",
                "--print-time",
                "--repeat",
                "2",
            ]
        )
        == 0
    )
    out = capsys.readouterr().out
    expected = run_ort(matmul_model, {"x": np.ones((1, 64), np.float32)})["y"].reshape(-1)
    best = int(np.argmax(expected))
    assert f"top 3 of output 'y':\n  {best:>8}  {expected[best]:.6g}" in out
    assert "execution time over 2 x 1 runs (ms):" in out


def test_compile_with_options(tmp_path, matmul_model, capsys):
    out = tmp_path / "m.tar"
    args = [
        "compile",
        str(matmul_model),
        "-o",
        str(out),
        "-O",
        "2",
        "--disabled-pass",
        "FoldConstant,AlterOpImpl",
        "--disabled-pass",
        "LambdaLift,LamdaLift",
        "--target",
        "llvm -num-cores=2",
    ]
    assert main(args) == 0
    with tarfile.open(out) as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    assert meta["compile"]["opt_level"] == 2
    assert meta["compile"]["disabled_passes"] == [
        "FoldConstant",
        "AlterOpImpl",
        "LambdaLift",
        "LamdaLift",
    ]
    assert meta["target"]["num-cores"] == 2
    # The typo is named; the real passes are not.
    warnings = [line for line in capsys.readouterr().err.splitlines() if "--disabled-pass" in line]
    assert warnings == [
        "tvm-prune: --disabled-pass LamdaLift: TVM and tvm-prune have no pass of that name"
    ]


def test_compile_at_opt_level_0(tmp_path, matmul_model):
    """-O 0 skips TVM's optimisation passes, not the folding of the weights' own computation
    (which used to fail there): the package builds, records its level and matches ORT."""
    out = tmp_path / "m.tar"
    assert main(["compile", str(matmul_model), "-o", str(out), "-O", "0"]) == 0
    package = tvm_prune.Package.load(out)
    assert package.metadata.compile["opt_level"] == 0
    x = np.random.default_rng(2).standard_normal((1, 64)).astype(np.float32)
    # One 64-term dot product per output in float32, summed in another order than ORT's.
    assert_outputs_close(package.run({"x": x}), run_ort(matmul_model, {"x": x}), rel_tol=1e-5)


def test_dynamic_input_with_input_shapes(tmp_path):
    path = models.save(models.matmul_relu(batch="batch"), tmp_path / "dyn.onnx")
    out = tmp_path / "dyn.tar"
    assert main(["compile", str(path), "-o", str(out), "--input-shapes", "x:[3,64]"]) == 0
    assert main(["run", str(out), "--outputs", str(tmp_path / "o.npz")]) == 0
    with np.load(tmp_path / "o.npz") as data:
        assert data["y"].shape == (3, 32)


@pytest.mark.parametrize(
    ("make_args", "message"),
    [
        (lambda t, m: ["compile", str(t / "absent.onnx")], "absent.onnx: no such file"),
        (lambda t, m: ["compile", str(m), "--target", "pixel9"], "unknown target kind 'pixel9'"),
        (
            lambda t, m: [
                "compile",
                str(m),
                "--cross-compiler",
                "no-such-g++",
                "--target",
                "aarch64-linux",
            ],
            "cross compiler 'no-such-g\\+\\+' .* not on PATH",
        ),
        (lambda t, m: ["compile", str(m), "--input-shapes", "y:[1,64]"], "unknown input\\(s\\) y"),
        (
            lambda t, m: ["compile", str(m), "--tuning-records", str(t)],
            "not a tuning-records folder",
        ),
        (lambda t, m: ["compile", str(t)], "is a directory, not a file"),
        (lambda t, m: ["compile", str(m), "--target", "nope"], "presets: .*host"),
        (
            lambda t, m: ["compile", str(m), "--disabled-pass", "CallTIRRewrite"],
            r"\(disabled: CallTIRRewrite\) failed: CodeGenVM cannot emit",
        ),
    ],
)
def test_compile_errors(tmp_path, matmul_model, capsys, make_args, message):
    out = tmp_path / "never.tar"
    assert main([*make_args(tmp_path, matmul_model), "-o", str(out)]) == 2
    assert re.search(message, _error_line(capsys))
    assert not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".never")]


@pytest.mark.parametrize(
    ("command", "output", "message"),
    [
        ("compile", "folder", "folder: is a directory, not a file to write"),
        ("compile", "file/m.tar", "file/m.tar: cannot make its folder"),
        ("tune", "file", "file: is a file; tune writes its records into a folder"),
    ],
)
def test_unwritable_outputs_are_refused_before_the_work(
    tmp_path, matmul_model, capsys, command, output, message
):
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("in the way")
    args = [command, str(matmul_model), "-o", str(tmp_path / output)]
    assert main([*args, "--trials", "1"] if command == "tune" else args) == 2
    assert message in _error_line(capsys)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file", "folder"]
    assert not any((tmp_path / "folder").iterdir())


def test_unsupported_op_exit_code(tmp_path, capsys):
    path = models.save(models.with_unsupported_op("Frobnicate"), tmp_path / "u.onnx")
    assert main(["compile", str(path), "-o", str(tmp_path / "u.tar")]) == 2
    assert "unsupported ONNX operator(s): Frobnicate (node odd_node)" in _error_line(capsys)
    assert not (tmp_path / "u.tar").exists()


def test_bad_input_shape_at_run(tmp_path, matmul_package, capsys):
    np.savez(tmp_path / "in.npz", x=np.zeros((2, 64), np.float32))
    out = tmp_path / "out.npz"
    code = main(
        [
            "run",
            str(matmul_package.path),
            "--inputs",
            str(tmp_path / "in.npz"),
            "--outputs",
            str(out),
        ]
    )
    assert code == 2
    assert "input 'x': shape [2, 64] given, [1, 64] expected" in _error_line(capsys)
    assert not out.exists()


def test_run_names_the_inputs_it_fills(tmp_path, matmul_package, capsys):
    """An --inputs file lacking an input still runs (like tvmc), and says what it generated."""
    np.savez(tmp_path / "in.npz")
    out = tmp_path / "out.npz"
    args = ["run", str(matmul_package.path), "--inputs", str(tmp_path / "in.npz")]
    assert main([*args, "--fill-mode", "ones", "--outputs", str(out)]) == 0
    assert f"{tmp_path / 'in.npz'} has no array for x: filled with ones" in capsys.readouterr().err
    with np.load(out) as data:
        assert data["y"].shape == (1, 32)


def test_tampered_package_at_run(tmp_path, matmul_package, capsys):
    # Change one byte of the library inside a well-formed (recompressed) package.
    raw = bytearray(gzip.decompress(matmul_package.path.read_bytes()))
    with tarfile.open(fileobj=io.BytesIO(bytes(raw))) as tar:
        library = tar.getmember("mod.so")
    raw[library.offset_data + library.size // 2] ^= 0x01
    bad = tmp_path / "bad.tar"
    bad.write_bytes(gzip.compress(bytes(raw)))
    assert main(["run", str(bad)]) == 2
    assert "does not match its sha256" in _error_line(capsys)


def test_truncated_package_file_at_run(tmp_path, matmul_package, capsys):
    data = matmul_package.path.read_bytes()
    bad = tmp_path / "bad.tar"
    bad.write_bytes(data[: len(data) // 2])  # an interrupted copy
    assert main(["run", str(bad)]) == 2
    assert f"{bad}: corrupt package" in _error_line(capsys)


def test_verbose_shows_the_traceback(tmp_path):
    from tvm_prune.errors import ModelLoadError

    with pytest.raises(ModelLoadError):
        main(["compile", str(tmp_path / "absent.onnx"), "--verbose"])


def test_targets_listing(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in ("host", "aarch64-linux", "android-arm64", "mali-g76", "hexagon-v68"):
        assert f"\n{name} " in out
    assert main(["targets", "mali-g76"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["target"]["device"] == "mali"


def test_help_mentions_every_command(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    # Each command starts a line of the COMMAND list, followed by its help.
    listed = [
        line.split()[0] for line in out.splitlines() if line.startswith("    ") and line[4] != " "
    ]
    assert listed == ["compile", "tune", "prune", "run", "bundle", "targets", "rpc"]


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["compile", "m.onnx", "--input-shapes", "x:[a,b]"])
    assert exit_info.value.code == 2
    assert "dimensions [a,b] must be integers" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("parse", "text", "value_or_error"),
    [
        (arguments.positive_int, "3", 3),
        (arguments.positive_int, "0", "0 must be at least 1"),
        (arguments.non_negative_int, "0", 0),
        (arguments.non_negative_int, "1.5", "'1.5' is not an integer"),
        (arguments.non_negative_float, "nan", "nan must be >= 0"),
        (arguments.fraction, "0.25", 0.25),
        (arguments.fraction, "1", "1.0 must be between 0 and 1 (exclusive)"),
        (arguments.fraction, "x", "'x' is not a number"),
    ],
)
def test_number_options(parse, text, value_or_error):
    if isinstance(value_or_error, str):
        with pytest.raises(argparse.ArgumentTypeError, match=re.escape(value_or_error)):
            parse(text)
    else:
        assert parse(text) == value_or_error
