"""PNG plots of a plan: per-layer sensitivity curves (greedy) and loss vs sparsity.

Needs matplotlib (``pip install tvm-prune[plot]``).
"""

from __future__ import annotations

from pathlib import Path

from ..errors import TvmPruneError
from ..package.archive import write_atomic
from .plan import PruningPlan


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as exc:
        raise TvmPruneError("--plot needs matplotlib: pip install 'tvm-prune[plot]'") from exc
    return plt


def write_plots(plan: PruningPlan, folder: Path) -> list[Path]:
    """Write the plots this plan has data for into ``folder``; return their paths."""
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    unit = plan.settings.get("loss_unit", "loss")
    written = []

    curves = plan.result.get("curves")
    if curves:
        levels = plan.settings["levels"]
        fig, ax = plt.subplots(figsize=(7, 4.5))
        for name, curve in curves.items():
            ax.plot([100 * v for v in levels], curve, marker=".", label=name)
        ax.set(xlabel="layer sparsity (%)", ylabel=unit, title="sensitivity of each layer alone")
        ax.set_yscale("symlog", linthresh=1e-3)
        ax.legend(fontsize=7)
        written.append(_save(fig, folder / "sensitivity.png"))

    points = [
        (s["sparsity"], s.get("measured_loss", s.get("loss")))
        for s in plan.steps
        if "sparsity" in s and (s.get("measured_loss", s.get("loss")) is not None)
    ]
    if points:
        fig, ax = plt.subplots(figsize=(7, 4.5))
        ax.scatter([100 * p[0] for p in points], [p[1] for p in points], s=12, label="measured")
        predicted = [
            (s["sparsity"], s["predicted_loss"]) for s in plan.steps if "predicted_loss" in s
        ]
        if predicted:
            ax.scatter(
                [100 * p[0] for p in predicted],
                [p[1] for p in predicted],
                s=12,
                marker="x",
                label="predicted",
            )
        tolerance = plan.settings.get("tolerance")
        if tolerance is not None:
            ax.axhline(tolerance, color="grey", linestyle="--", label="tolerance")
        ax.set(xlabel="total sparsity (%)", ylabel=unit, title=f"{plan.method}: loss vs sparsity")
        ax.legend()
        written.append(_save(fig, folder / f"{plan.method}_loss_vs_sparsity.png"))
    return written


def write_channel_plots(report: dict, folder: Path) -> list[Path]:
    """MACs kept vs accuracy of a channel pruning run (its ``curve``), into ``folder``."""
    curve = report.get("curve")
    if not curve:
        return []
    plt = _pyplot()
    folder.mkdir(parents=True, exist_ok=True)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    label = "gate rounds" if report["importance"] == "gates" else f"{report['importance']} plans"
    curve = sorted(curve, key=lambda p: -p["macs_kept"])
    ax.plot([p["macs_kept"] for p in curve], [p["accuracy"] for p in curve], "o-", label=label)
    ax.scatter([report["macs_kept"]], [report["accuracy"]], marker="*", s=120, label="result")
    if report.get("fine_tuned_accuracy") is not None:
        ax.scatter(
            [report["macs_kept"]], [report["fine_tuned_accuracy"]], marker="^", label="fine-tuned"
        )
    ax.invert_xaxis()
    ax.set(xlabel="MACs kept (fraction of dense)", ylabel="accuracy on --calib data")
    ax.set_title(f"channel pruning ({report['importance']}): MACs kept vs accuracy")
    ax.legend()
    return [_save(fig, folder / f"channel_{report['importance']}_macs_vs_accuracy.png")]


def write_bench_macs_plot(points, dense_accuracy: float, path: Path, title: str) -> Path:
    """MACs kept vs held-out accuracy of benchmarked plans, before and after fine-tuning.

    ``points``: ``(importance, channel multiple, MACs kept, accuracy, fine-tuned accuracy or
    None)``; one series per importance and multiple.
    """
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4.5))
    series = sorted({(p[0], p[1]) for p in points})
    for index, (importance, multiple) in enumerate(series):
        rows = sorted((p for p in points if p[:2] == (importance, multiple)), key=lambda p: p[2])
        label = importance + (f" x{multiple}" if multiple > 1 else "")
        color = f"C{index}"
        ax.plot([p[2] for p in rows], [p[3] for p in rows], "o--", color=color, label=label)
        tuned = [p for p in rows if p[4] is not None]
        if tuned:
            ax.plot(
                [p[2] for p in tuned],
                [p[4] for p in tuned],
                "^-",
                color=color,
                label=f"{label}, fine-tuned",
            )
    ax.axhline(dense_accuracy, color="grey", linestyle=":", label="dense")
    ax.set(xlabel="MACs kept (fraction of dense)", ylabel="held-out accuracy", title=title)
    ax.legend(fontsize=7)
    return _save(fig, path)


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=100))
    import matplotlib.pyplot as plt

    plt.close(fig)
    return path
