"""What the bench scripts share: timing runtimes in alternation and printing a table.

The scripts import it as a sibling module (``python bench/<script>.py`` puts ``bench/`` on the
path).
"""

from __future__ import annotations

import math
import time

import numpy as np

# Shortest turn of one runtime in the alternation (see ``alternating``).
TURN_SECONDS = 0.2


def alternating(runs, repeats, repeat: int, block: int = 3) -> dict[str, float]:
    """Median ms per run label; the labels take turns each round, each turn at least ``block``
    timed runs and at least ``TURN_SECONDS`` long (labels in ``repeats``: one timed run per turn,
    for that many rounds).

    Both runtimes keep their worker threads spinning for a while after a run, and a spinning
    thread of one slows the other's parallel kernels: short turns (a small model's 3 runs last
    0.3 ms) measured that interference, not the runtimes. So the first two runs of each turn
    absorb the other runtime's spinning and are not counted, and turns are long.
    """
    turns = {}
    for label, run in runs.items():
        run()
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        turns[label] = 1 if label in repeats else max(block, math.ceil(TURN_SECONDS / seconds))
    times = {label: [] for label in runs}
    for round_ in range(repeat):
        for label, run in runs.items():
            if round_ >= repeats.get(label, repeat):
                continue
            for _ in range(2):
                run()
            for _ in range(turns[label]):
                start = time.perf_counter()
                run()
                times[label].append(time.perf_counter() - start)
    return {label: float(np.median(t)) * 1e3 for label, t in times.items()}


def print_table(header, rows) -> None:
    """``header`` and ``rows`` as columns padded to their widest cell, joined by `` | ``."""
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print(" | ".join(str(cell).ljust(width) for cell, width in zip(row, widths)))
