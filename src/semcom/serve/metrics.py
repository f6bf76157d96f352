"""Counters and histograms in the Prometheus text exposition format (version 0.0.4),
without the ``prometheus_client`` dependency: what ``GET /metrics`` shows.

Names (all prefixed ``semcom_``):

* ``requests_total{endpoint, code}`` -- answered requests by HTTP status;
* ``rejected_total{reason}`` -- requests refused before any model work (``overloaded``,
  ``too_large``, ``unauthorized``, ``malformed``, ...);
* ``request_seconds`` -- histogram of the time from receiving a request body to sending
  the answer, answered requests only;
* ``batch_size`` -- histogram of the sizes of the model calls dynamic batching made;
* ``queue_depth`` -- gauge: requests waiting for a batch now;
* ``sessions`` -- gauge: open progressive sessions.

Thread-safe (one lock); workers of ``uvicorn --workers N`` each keep their own.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Callable, Sequence

__all__ = ["LATENCY_BUCKETS", "Metrics"]

#: Upper bounds (seconds) of the latency histogram's buckets.
LATENCY_BUCKETS: tuple[float, ...] = (
    0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0,
)  # fmt: skip
#: Upper bounds of the batch-size histogram's buckets.
BATCH_BUCKETS: tuple[float, ...] = (1, 2, 4, 8, 16, 32, 64, 128)


class _Histogram:
    def __init__(self, bounds: Sequence[float]) -> None:
        self.bounds = tuple(bounds)
        self.counts = [0] * (len(self.bounds) + 1)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(self.bounds, value)] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> list[str]:
        out, running = [], 0
        for bound, count in zip(self.bounds, self.counts, strict=False):
            running += count
            out.append(f'{name}_bucket{{le="{bound:g}"}} {running}')
        out.append(f'{name}_bucket{{le="+Inf"}} {self.n}')
        out.append(f"{name}_sum {self.total:.6f}")
        out.append(f"{name}_count {self.n}")
        return out


class Metrics:
    """The server's counters (see the module docstring)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.requests: dict[tuple[str, int], int] = {}
        self.rejected: dict[str, int] = {}
        self.latency = _Histogram(LATENCY_BUCKETS)
        self.batches = _Histogram(BATCH_BUCKETS)
        self.gauges: dict[str, Callable[[], float]] = {}

    def answered(self, endpoint: str, code: int, seconds: float | None = None) -> None:
        """Count an answer (and its latency, when given)."""
        with self._lock:
            key = (endpoint, int(code))
            self.requests[key] = self.requests.get(key, 0) + 1
            if seconds is not None:
                self.latency.observe(seconds)

    def reject(self, reason: str) -> None:
        """Count a request refused for ``reason``."""
        with self._lock:
            self.rejected[reason] = self.rejected.get(reason, 0) + 1

    def batch(self, size: int) -> None:
        """Count one model call of ``size`` items."""
        with self._lock:
            self.batches.observe(size)

    def render(self) -> str:
        """The exposition text."""
        with self._lock:
            lines = [
                "# HELP semcom_requests_total Answered requests by endpoint and status.",
                "# TYPE semcom_requests_total counter",
            ]
            for (ep, code), n in sorted(self.requests.items()):
                lines.append(f'semcom_requests_total{{endpoint="{ep}",code="{code}"}} {n}')
            lines += [
                "# HELP semcom_rejected_total Requests refused before any model work.",
                "# TYPE semcom_rejected_total counter",
            ]
            for reason, n in sorted(self.rejected.items()):
                lines.append(f'semcom_rejected_total{{reason="{reason}"}} {n}')
            lines += [
                "# HELP semcom_request_seconds Time from request to answer.",
                "# TYPE semcom_request_seconds histogram",
                *self.latency.lines("semcom_request_seconds"),
                "# HELP semcom_batch_size Items per model call.",
                "# TYPE semcom_batch_size histogram",
                *self.batches.lines("semcom_batch_size"),
            ]
            gauges = dict(self.gauges)
        for name, read in sorted(gauges.items()):
            lines += [f"# TYPE semcom_{name} gauge", f"semcom_{name} {float(read()):g}"]
        return "\n".join(lines) + "\n"
