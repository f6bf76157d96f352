"""The collaborative edge over a folder of images (``semcom edge``).

:func:`run_edge` classifies every image with the edge model of a ``collab`` scheme; the
images the gate finds uncertain are offloaded -- their message POSTed to a ``semcom
serve`` -- by ``concurrency`` threads. A 503 (``Retry-After`` honoured), a 504 or a
connection failure is retried with exponential backoff (``retries`` times); any other
4xx, or running out of retries, marks the image ``failed`` with the reason, keeping the
edge's own answer as ``fallback``. Every image ends in the results, ``edge``,
``server`` or ``failed``; none is dropped.

A result row (one JSON object per line in the results file)::

    {"file", "status": "edge" | "server" | "failed", "label", "confidence", "class"?,
     "bytes", "patches", "attempts", "latency_ms", "reason"?, "fallback"?}
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from semcom.errors import InputError, SemcomError

__all__ = ["EdgeSummary", "offload", "run_edge"]

RETRY_STATUS = (503, 504)


@dataclass
class EdgeSummary:
    """What :func:`run_edge` did."""

    images: int
    on_edge: int
    offloaded: int
    answered_by_server: int
    failed: int
    unreadable: int
    bytes_sent: int
    seconds: float
    rows: list[dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        n = max(1, self.images)
        lat = sorted(r["latency_ms"] for r in self.rows if r["status"] == "server")
        return {
            "images": self.images,
            "on_edge": self.on_edge,
            "offloaded": self.offloaded,
            "answered_by_server": self.answered_by_server,
            "failed": self.failed,
            "unreadable": self.unreadable,
            "bytes_sent": self.bytes_sent,
            "mean_bytes_per_image": round(self.bytes_sent / n, 2),
            "server_latency_ms_p50": round(lat[len(lat) // 2], 2) if lat else None,
            "seconds": round(self.seconds, 3),
        }


def offload(
    client: Any,
    url: str,
    message: bytes,
    *,
    retries: int = 5,
    backoff_s: float = 0.05,
    headers: dict[str, str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[dict[str, Any] | None, int, str | None]:
    """POST ``message`` to ``url`` with retries: ``(answer or None, attempts, reason)``.

    Retried: 503 / 504 and connection errors, waiting ``backoff_s * 2**attempt`` (or the
    503's ``Retry-After`` when longer), at most ``retries`` times. Not retried: other
    statuses (the reason is the server's ``detail``).
    """
    import httpx

    attempt, reason = 0, None
    while True:
        attempt += 1
        wait = backoff_s * 2 ** (attempt - 1)
        try:
            r = client.post(url, content=message, headers=headers)
        except httpx.HTTPError as exc:
            reason = f"{type(exc).__name__}: {exc}"
        else:
            if r.status_code == 200:
                return r.json(), attempt, None
            try:
                detail = r.json().get("detail", r.text)
            except ValueError:
                detail = r.text
            reason = f"HTTP {r.status_code}: {detail}"
            if r.status_code not in RETRY_STATUS:
                return None, attempt, reason
            after = r.headers.get("retry-after", "")
            if after.isdigit():
                wait = max(wait, float(after))
        if attempt > retries:
            return None, attempt, reason
        sleep(min(wait, 30.0))


def _edge_row(name: str, tx: Any, host_names: Callable[[int, int], str | None]) -> dict[str, Any]:
    logits = tx.local.logits.float()
    probs = logits.softmax(0)
    label = int(probs.argmax())
    row = {"file": name, "status": "edge", "label": label,
           "confidence": round(float(probs.max()), 6), "bytes": 0, "patches": 0,
           "attempts": 0, "latency_ms": 0.0}  # fmt: skip
    cls = host_names(label, int(probs.numel()))
    if cls is not None:
        row["class"] = cls
    return row


def run_edge(
    files: Sequence[Path],
    server: str,
    scheme_spec: str,
    eta: float,
    *,
    token: str | None = None,
    concurrency: int = 8,
    retries: int = 5,
    timeout_s: float = 30.0,
    resize: bool = True,
    fit: str = "fit",
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> EdgeSummary:
    """Run the edge of ``scheme_spec`` (a ``collab`` spec) at threshold ``eta`` over image
    ``files``, offloading to the server at base URL ``server`` (see the module docstring).
    ``progress(k)`` is called as images finish."""
    import httpx
    import torch

    from semcom.imageio import fit_image, load_image_info
    from semcom.schemes import create_scheme
    from semcom.schemes.collab import CollabScheme
    from semcom.serve.host import ReceiverHost

    sch = create_scheme(scheme_spec)
    if not isinstance(sch, CollabScheme):
        raise InputError(f"semcom edge runs a collab scheme, not {sch.name}")
    eta = sch.validate_rate(eta)
    if concurrency < 1 or retries < 0:
        raise InputError("--concurrency must be >= 1 and --retries >= 0")
    names = ReceiverHost(judge=None).class_name
    side = sch.img_size
    url = server.rstrip("/") + "/v1/receive"
    headers = {"Authorization": f"Bearer {token}"} if token else None
    rows: list[dict[str, Any] | None] = [None] * len(files)
    lock = threading.Lock()
    t0 = time.perf_counter()
    unreadable = 0

    def finish(i: int, row: dict[str, Any]) -> None:
        with lock:
            rows[i] = row
        if progress is not None:
            progress(1)

    client = httpx.Client(timeout=timeout_s, limits=httpx.Limits(max_connections=concurrency))
    try:
        with ThreadPoolExecutor(concurrency, thread_name_prefix="semcom-edge") as pool:
            for lo in range(0, len(files), batch_size):
                chunk = list(range(lo, min(lo + batch_size, len(files))))
                images, ok = [], []
                for i in chunk:
                    try:
                        img = load_image_info(files[i]).image
                        if tuple(img.shape[-2:]) != (side, side):
                            if not resize:
                                raise InputError(
                                    f"{files[i].name} is {img.shape[2]}x{img.shape[1]}, the "
                                    f"edge takes {side}x{side} (drop --no-resize)"
                                )
                            img = fit_image(img, (side, side), fit).image
                        images.append(img)
                        ok.append(i)
                    except SemcomError as exc:
                        unreadable += 1
                        finish(i, {"file": files[i].name, "status": "failed", "reason": str(exc),
                                   "bytes": 0, "patches": 0, "attempts": 0,
                                   "latency_ms": 0.0})  # fmt: skip
                if not ok:
                    continue
                txs = sch.transmit_batch(torch.stack(images), eta)
                for i, tx in zip(ok, txs, strict=True):
                    row = _edge_row(files[i].name, tx, names)
                    if not tx.messages:
                        finish(i, row)
                        continue
                    pool.submit(_offload_one, i, row, tx, client, url, headers, retries, finish)
    finally:
        client.close()
    done = [r for r in rows if r is not None]
    assert len(done) == len(files), "an image left the edge without a result"
    return EdgeSummary(
        images=len(files),
        on_edge=sum(r["status"] == "edge" for r in done),
        offloaded=sum(r["patches"] > 0 for r in done),
        answered_by_server=sum(r["status"] == "server" for r in done),
        failed=sum(r["status"] == "failed" for r in done),
        unreadable=unreadable,
        bytes_sent=sum(r["bytes"] for r in done),
        seconds=time.perf_counter() - t0,
        rows=done,
    )


def _offload_one(i, row, tx, client, url, headers, retries, finish) -> None:
    message = tx.messages[0]
    row.update(bytes=len(message), patches=int(tx.stats.get("patches", 0)))
    started = time.perf_counter()
    try:
        answer, attempts, reason = offload(client, url, message, retries=retries, headers=headers)
    except Exception as exc:  # noqa: BLE001 - never lose the image
        answer, attempts, reason = None, 1, f"{type(exc).__name__}: {exc}"
    row["attempts"] = attempts
    row["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    if answer is None or "label" not in answer:
        fallback = {k: row.get(k) for k in ("label", "confidence", "class") if k in row}
        for k in ("label", "confidence", "class"):
            row.pop(k, None)
        row.update(status="failed", reason=reason or "the server gave no label", fallback=fallback)
    else:
        row.update(status="server", label=answer["label"], confidence=answer.get("confidence"))
        if answer.get("class") is not None:
            row["class"] = answer["class"]
        else:
            row.pop("class", None)
    finish(i, row)


def write_rows(path: Path, rows: Sequence[dict[str, Any]]) -> None:
    """Results as JSON lines."""
    with path.open("w") as f:
        for r in rows:
            f.write(json.dumps(r) + "\n")
