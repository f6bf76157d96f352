"""Timing and table output shared by the benchmark scripts (``python benchmarks/bench_*.py``)."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any], repeats: int) -> tuple[Any, float]:
    """Result of ``fn`` and its median wall time (seconds) over ``repeats`` runs."""
    times, out = [], None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return out, statistics.median(times)


def print_head(head: str) -> None:
    """Print a table's column heading and a rule as wide as it."""
    print(head)
    print("-" * len(head))
