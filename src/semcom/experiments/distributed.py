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
answers in one place. So the records equal those of a one-process run with the same
number of torch threads per process (float results can depend on it), timings aside.
``spawn`` gives its processes this process's thread count; torchrun gives each one
thread (``OMP_NUM_THREADS=1``) unless told otherwise.
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


def _worker(
    rank: int, size: int, port: int, threads: int, errors: str, fn: Callable[..., Any], args: tuple
) -> None:
    import torch
    import torch.distributed as dist

    from semcom.errors import SemcomError

    torch.set_num_threads(threads)
    dist.init_process_group(
        "gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=size
    )
    try:
        fn(TorchGroup(), *args)
    except SemcomError as exc:  # the parent re-raises it as one line
        with open(os.path.join(errors, f"{rank}.txt"), "w", encoding="utf-8") as f:
            f.write(f"{type(exc).__name__}\n{exc}")
        raise
    finally:
        dist.destroy_process_group()


def spawn(size: int, fn: Callable[..., Any], *args: Any) -> None:
    """Run ``fn(group, *args)`` in ``size`` local processes joined by gloo (``fn`` and
    ``args`` must be picklable; ``fn`` at module level). Each process uses as many torch
    threads as this one (results can depend on the thread count, so a one-process run
    with the same count gives the same records). A :class:`~semcom.errors.SemcomError`
    in any process is raised here, as it was raised there."""
    import tempfile

    import torch
    import torch.multiprocessing as mp

    from semcom import errors as _errors

    with tempfile.TemporaryDirectory() as tmp:
        try:
            mp.spawn(
                _worker,
                args=(size, _free_port(), torch.get_num_threads(), tmp, fn, args),
                nprocs=size,
                join=True,
            )
        except Exception:
            for name in sorted(os.listdir(tmp)):
                kind, _, text = (
                    open(os.path.join(tmp, name), encoding="utf-8").read().partition("\n")
                )
                cls = getattr(_errors, kind, _errors.SemcomError)
                raise cls(text) from None
            raise
