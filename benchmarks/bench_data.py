"""Synthetic-world generation rate (images/s) at 64x64: ``python benchmarks/bench_data.py``.

Times ``SyntheticWorld.generate`` on fresh seeds, several runs per setting, and prints the
median rate with and without captions, for torch's current thread count and for one
thread. On a shared, oversubscribed machine torch's multi-threaded kernels can stall
badly unless ``OMP_WAIT_POLICY=PASSIVE`` is set; the one-thread figure shows that case.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from semcom.data import SyntheticWorld


def rate(world: SyntheticWorld, batch: int, runs: int, captions: bool) -> tuple[float, float]:
    """Median and best images/s over ``runs`` batches of fresh seeds (after one warm-up)."""
    world.generate(range(batch), captions=captions)
    times = []
    for r in range(runs):
        seeds = range((r + 1) * batch, (r + 2) * batch)
        t0 = time.perf_counter()
        world.generate(seeds, captions=captions)
        times.append(time.perf_counter() - t0)
    return batch / statistics.median(times), batch / min(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--batch", type=int, default=1024)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    world = SyntheticWorld(size=args.size)
    default_threads = torch.get_num_threads()
    print(
        f"SyntheticWorld(size={args.size}) generate(), batch {args.batch}, {args.runs} runs; "
        f"cpus={os.cpu_count()}, OMP_WAIT_POLICY={os.environ.get('OMP_WAIT_POLICY', '(unset)')}"
    )
    print(f"{'threads':>8} {'captions':>9} {'median img/s':>13} {'best img/s':>11}")
    for threads in dict.fromkeys((default_threads, 1)):
        torch.set_num_threads(threads)
        for captions in (False, True):
            med, best = rate(world, args.batch, args.runs, captions)
            print(f"{threads:>8} {str(captions):>9} {med:>13,.0f} {best:>11,.0f}")
    torch.set_num_threads(default_threads)


if __name__ == "__main__":
    main()
