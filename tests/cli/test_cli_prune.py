"""``tvm-prune prune`` and ``compile --prune``: exit codes, report, pruned ONNX, package."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

from tvm_prune.cli.main import main
from tvm_prune.testing.ort import run_ort

DIGITS = Path(__file__).resolve().parents[2] / "examples" / "digits"


def test_prune_writes_report_and_onnx(tmp_path, capsys):
    report, out = tmp_path / "report.json", tmp_path / "pruned.onnx"
    code = main(
        [
            "prune",
            str(DIGITS / "digits_cnn.onnx"),
            "--method",
            "layerwise",
            "--sparsity",
            "0.6",
            "--calib",
            str(DIGITS / "digits_calib.npz"),
            "--report",
            str(report),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    assert "total sparsity 60.0% (layerwise)" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["method"] == "layerwise" and abs(data["sparsity"] - 0.6) < 1e-3
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(out).graph.initializer}
    zeros = sum(int(np.sum(weights[layer["weight"]] == 0)) for layer in data["layers"])
    assert zeros >= sum(layer["pruned"] for layer in data["layers"])
    x = np.load(DIGITS / "digits_test.npz")["input"][:1]
    assert run_ort(out, {"input": x})["logits"].shape == (1, 10)


def test_compile_with_prune_records_the_plan(tmp_path):
    out = tmp_path / "m.tar"
    args = ["compile", str(DIGITS / "digits_cnn.onnx"), "-o", str(out)]
    args += ["--prune", "magnitude", "--sparsity", "0.5", "--calib"]
    assert main([*args, str(DIGITS / "digits_calib.npz")]) == 0
    with tarfile.open(out) as tar:
        meta = json.load(tar.extractfile("metadata.json"))
    names = [t["name"] for t in meta["transforms"]]
    assert names == [
        "PruneWeights",
        "FoldBatchNormIntoConv",
        "FoldUpsampleIntoConv",
        "LowerUpsampling",
        "EmitUpsampleKernels",
        "LowerConvTransposeToConv",
        "DenseToGroupedConv",
        "RegroupConv",  # the host preset splits grouped convs it runs slowly
        "WinogradConv2d",
    ]
    assert meta["transforms"][0]["report"]["method"] == "magnitude"


def test_behavior_without_tolerance_is_a_one_line_error(capsys):
    code = main(["prune", str(DIGITS / "digits_cnn.onnx"), "--method", "behavior"])
    assert code == 2
    assert "needs --tolerance" in capsys.readouterr().err.strip().splitlines()[-1]


def test_accuracy_function_from_a_file_replaces_label_accuracy(tmp_path):
    script = tmp_path / "task.py"
    script.write_text(
        "import numpy as np\n"
        f"LABELS = np.load({str(DIGITS / 'digits_calib.npz')!r})['label']\n"
        "def half_top1(outputs):\n"
        "    logits = outputs[0].reshape(len(LABELS), -1)\n"
        "    return 0.5 * float(np.mean(logits.argmax(axis=1) == LABELS))\n"
    )
    report = tmp_path / "report.json"
    args = ["prune", str(DIGITS / "digits_cnn.onnx"), "--method", "greedy", "--sparsity", "0.2"]
    args += ["--calib", str(DIGITS / "digits_calib.npz"), "--report", str(report)]
    assert main([*args, "--accuracy", f"{script}:half_top1"]) == 0
    data = json.loads(report.read_text())
    assert data["settings"]["objective"] == "accuracy"
    # The digits CNN gets every calibration image right: our function says 0.5.
    assert data["result"]["dense_accuracy"] == 0.5


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("no_such_file.py:f", "no such file"),
        ("{script}:missing", "has no function 'missing'"),
        ("{script}:broken", "raised ZeroDivisionError"),
        ("{script}", "expected FILE.py:FUNCTION"),
    ],
)
def test_bad_accuracy_function_is_a_one_line_error(tmp_path, capsys, spec, message):
    script = tmp_path / "task.py"
    script.write_text("def broken(outputs):\n    return 1 / 0\n")
    args = ["prune", str(DIGITS / "digits_cnn.onnx"), "--method", "greedy", "--sparsity", "0.2"]
    args += ["--calib", str(DIGITS / "digits_calib.npz")]
    assert main([*args, "--accuracy", spec.format(script=script)]) == 2
    assert message in capsys.readouterr().err.strip().splitlines()[-1]


def test_channel_pruning_writes_the_smaller_onnx_report_and_plot(tmp_path, capsys):
    report, out, plots = tmp_path / "report.json", tmp_path / "pruned.onnx", tmp_path / "plots"
    calib = DIGITS / "digits_calib.npz"
    args = ["prune", str(DIGITS / "digits_cnn.onnx"), "--method", "channel", "--macs", "0.5"]
    args += ["--calib", str(calib), "--report", str(report), "--plot", str(plots), "-o", str(out)]
    assert main([*args, "--round-channels", "8"]) == 0
    assert "l1: 0.4" in capsys.readouterr().out
    data = json.loads(report.read_text())
    assert data["importance"] == "l1" and 0.4 < data["macs_kept"] <= 0.5
    assert data["curve"][0] == {"macs_kept": 1.0, "accuracy": data["first_accuracy"]}
    assert [p["macs_kept"] for p in data["curve"]] == sorted(
        (p["macs_kept"] for p in data["curve"]), reverse=True
    )
    assert (plots / "channel_l1_macs_vs_accuracy.png").stat().st_size > 0
    # The exported graph has the smaller layers and reproduces the accuracy the report measured.
    proto = onnx.load(out)
    kept = {t.name: t.dims[0] for t in proto.graph.initializer if t.name == "stem.0.weight"}
    assert kept["stem.0.weight"] == 16 - len(data["plan"].get("stem.0.weight", []))
    assert all((len(channels) % 8 == 0) for channels in data["plan"].values())  # of 16/32/64
    with np.load(calib) as arrays:
        x, labels = arrays["input"], arrays["label"]
    logits = np.concatenate([run_ort(out, {"input": image[None]})["logits"] for image in x])
    assert np.mean(logits.argmax(1) == labels) == pytest.approx(data["accuracy"])


def test_gates_without_labels_is_a_one_line_error(capsys):
    args = ["prune", str(DIGITS / "digits_cnn.onnx"), "--method", "channel", "--macs", "0.5"]
    assert main([*args, "--importance", "gates"]) == 2
    assert "train on labels" in capsys.readouterr().err.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["prune", "--method", "magnitude", "--sparsity", "0.5", "--macs", "0.5"],
            "--macs: for channel pruning only, not for method magnitude",
        ),
        (
            ["prune", "--method", "channel", "--macs", "0.7", "--sparsity", "0.5", "--metric=kl"],
            "--sparsity, --metric: for weight pruning only, not for method channel",
        ),
        (
            ["compile", "--prune", "greedy", "--sparsity", "0.5", "--fine-tune", "3"],
            "--fine-tune: for channel pruning only, not for method greedy",
        ),
    ],
)
def test_options_of_the_other_kind_of_pruning_are_refused(tmp_path, capsys, args, message):
    out = tmp_path / "never.onnx"
    command, *options = args
    assert main([command, str(DIGITS / "digits_cnn.onnx"), *options, "-o", str(out)]) == 2
    assert capsys.readouterr().err.strip().splitlines()[-1].endswith(message)
    assert not out.exists()
