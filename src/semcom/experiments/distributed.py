"""Several processes on one sweep: the images are shared out, the records are the same.

The sweep asks a :class:`Group` two things: which chunks of images this process works on
(:meth:`Group.owns`) and to hand every process what each made (:meth:`Group.all_gather`).
One process is :data:`LOCAL`. Under ``torchrun`` (which sets ``RANK``, ``WORLD_SIZE``,
``MASTER_ADDR``, ``MASTER_PORT``) :func:`group_from_env` joins torch.distributed's
process group (gloo: CPU, any number of machines); :func:`spawn` starts N local processes
for ``semcom bench --workers N``.

Exactness: every process applies each channel to every message in image order (channels
are cheap; their random draws then do not depend on the split), transmitters and receivers
see the same chunks of images as in a one-process run, and the first process scores all
answers in one place. So the records equal a one-process run's, timings aside.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any


class Group:
    """One process working alone (``rank`` 0 of ``size`` 1)."""

    rank: int = 0
    size: int = 1

    def owns(self, chunk: int) -> bool:
        """True when chunk ``chunk`` of the images is this process's (round robin)."""
        return chunk % self.size == self.rank

    def all_gather(self, obj: Any) -> list[Any]:
        """Every process's ``obj``, by rank (picklable objects)."""
        return [obj]


LOCAL = Group()


class TorchGroup(Group):
    """The default torch.distributed process group (already initialised)."""

    def __init__(self) -> None:
        import torch.distributed as dist

        self._dist = dist
        self.rank = dist.get_rank()
        self.size = dist.get_world_size()

    def all_gather(self, obj: Any) -> list[Any]:
        out: list[Any] = [None] * self.size
        self._dist.all_gather_object(out, obj)
        return out


def group_from_env() -> Group:
    """:class:`TorchGroup` when launched by torchrun with ``WORLD_SIZE`` > 1 (joining the
    gloo process group if no one has), else :data:`LOCAL`."""
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return LOCAL
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group("gloo")
    return TorchGroup()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _worker(rank: int, size: int, port: int, fn: Callable[..., Any], args: tuple) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(max(1, (os.cpu_count() or 1) // size))
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size
    )
    try:
        fn(TorchGroup(), *args)
    finally:
        dist.destroy_process_group()


def spawn(size: int, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(group, *args)`` in ``size`` local processes joined by gloo (``fn`` and
    ``args`` must be picklable; ``fn`` at module level)."""
    import torch.multiprocessing as mp

    mp.spawn(_worker, args=(size, _free_port(), fn, args), nprocs=size, join=True)
