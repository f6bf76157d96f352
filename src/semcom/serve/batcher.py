"""Dynamic batching: concurrent requests grouped into one model call.

A :class:`DynamicBatcher` owns a bounded queue and one worker thread. ``await
batcher.submit(item)`` enqueues an item (or raises :class:`Overloaded` at once when the
queue is full: the caller answers 503) and resolves with its result. The collector takes
the first waiting item, then keeps taking items until ``max_batch`` are in hand or
``max_wait_ms`` have passed since the first, and hands the batch to ``fn(items) ->
results`` on the worker thread (torch's CPU kernels release the GIL, the event loop keeps
accepting requests meanwhile). While ``fn`` runs, new requests queue up and form the next
batch, so under load batches fill without any waiting; ``max_wait_ms = 0`` never waits
and batches only what is already queued.

``fn`` must return one result per item, in order; a result may be an exception instance,
which is raised in that item's caller only. If ``fn`` itself raises, every item of the
batch gets that exception. Every accepted item is resolved exactly once.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import time
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["DynamicBatcher", "Overloaded"]

#: How often a forming batch looks for more items while it waits (seconds).
_POLL_S = 0.0005


class Overloaded(Exception):
    """The queue is full: the request was not accepted (answer 503, retry later)."""


class DynamicBatcher:
    """Groups :meth:`submit` calls into calls of ``fn`` (see the module docstring).

    Args:
        fn: ``fn(items) -> results`` (same length), run on the worker thread.
        max_batch: most items per call (>= 1).
        max_wait_ms: longest a first item waits for company (>= 0).
        max_queue: most items waiting (>= 1); beyond it :meth:`submit` raises
            :class:`Overloaded`.
        on_batch: called with each batch's size (metrics).
    """

    def __init__(
        self,
        fn: Callable[[list[Any]], Sequence[Any]],
        *,
        max_batch: int = 32,
        max_wait_ms: float = 2.0,
        max_queue: int = 256,
        on_batch: Callable[[int], None] | None = None,
    ) -> None:
        if max_batch < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch and max_queue must be >= 1, max_wait_ms >= 0")
        self.fn = fn
        self.max_batch = int(max_batch)
        self.max_wait = float(max_wait_ms) / 1000.0
        self.max_queue = int(max_queue)
        self.on_batch = on_batch
        self._queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] | None = None
        self._task: asyncio.Task[None] | None = None
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="semcom-batch")

    @property
    def waiting(self) -> int:
        """Items accepted and not yet taken into a batch."""
        return self._queue.qsize() if self._queue is not None else 0

    def start(self) -> None:
        """Start the collector on the running event loop (idempotent)."""
        if self._task is None:
            self._queue = asyncio.Queue(maxsize=self.max_queue)
            self._task = asyncio.get_running_loop().create_task(self._collect())

    async def stop(self) -> None:
        """Finish: cancel the collector, fail what still waits, stop the worker."""
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None
        if self._queue is not None:
            while not self._queue.empty():
                _, fut = self._queue.get_nowait()
                if not fut.done():
                    fut.set_exception(Overloaded("server shutting down"))
        self._pool.shutdown(wait=False)

    async def submit(self, item: Any) -> Any:
        """Enqueue ``item`` and wait for its result (raised if it is an exception).

        Raises:
            Overloaded: the queue is full (nothing was enqueued).
        """
        self.start()
        assert self._queue is not None
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((item, fut))
        except asyncio.QueueFull:
            raise Overloaded(f"{self.max_queue} requests already waiting") from None
        result = await asyncio.shield(fut)
        if isinstance(result, BaseException):
            raise result
        return result

    async def _collect(self) -> None:
        assert self._queue is not None
        loop = asyncio.get_running_loop()
        queue = self._queue
        while True:
            batch = [await queue.get()]
            deadline = time.monotonic() + self.max_wait
            while len(batch) < self.max_batch:
                try:
                    batch.append(queue.get_nowait())
                    continue
                except asyncio.QueueEmpty:
                    pass
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                # polls rather than wait_for(queue.get()): a get cancelled by a timeout
                # can drop the item it was taking on some Python versions
                await asyncio.sleep(min(left, _POLL_S))
            items = [b[0] for b in batch]
            if self.on_batch is not None:
                self.on_batch(len(items))
            try:
                results = await loop.run_in_executor(self._pool, self.fn, items)
                if len(results) != len(items):
                    raise RuntimeError(
                        f"batch function gave {len(results)} results for {len(items)}"
                    )
            except Exception as exc:  # every item of the batch learns why
                results = [exc] * len(items)
            for (_, fut), res in zip(batch, results, strict=True):
                if not fut.done():
                    fut.set_result(res)
