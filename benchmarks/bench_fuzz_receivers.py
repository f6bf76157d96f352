"""Fuzz every registered receiver with structure-aware mutants and print the counts.

Usage::

    python benchmarks/bench_fuzz_receivers.py [--n 1000000] [--seed 0] [--batch 256]

``--n`` inputs in all, spread evenly over the available schemes (each one's receiver is
the one ``semcom receive`` builds) and over the mutation kinds of
:mod:`semcom.codec.fuzz`. Mutants are decoded in batches (``decompress_batch``, the
sweep's path); a batch in which anything but BitstreamError escapes is decoded again one
by one to count the culprits. Prints, per scheme: inputs, accepted, rejected
(BitstreamError), other exceptions (must be 0), the slowest batch per message, the
throughput and the peak resident memory.
"""

from __future__ import annotations

import argparse
import collections
import random
import resource
import sys
import time

import torch

from semcom.codec.container import unpack
from semcom.codec.fuzz import KINDS, mutate
from semcom.data.synthetic import SyntheticWorld
from semcom.errors import BitstreamError
from semcom.experiments.sweep import encode_all
from semcom.schemes import create_receiver, create_scheme, list_schemes


def _one_by_one(receiver, batch, counts, others) -> None:
    for kind, data in batch:
        try:
            receiver.decompress(data)
            counts["accepted"] += 1
        except BitstreamError:
            counts["rejected"] += 1
        except Exception as exc:  # noqa: BLE001 - what this script counts
            counts["other"] += 1
            others[f"{kind}: {type(exc).__name__}: {str(exc)[:120]}"] += 1


def fuzz_scheme(name: str, n: int, seed: int, batch_size: int) -> dict:
    scheme = create_scheme(name)
    images = SyntheticWorld().generate(range(4)).images
    msgs = encode_all(scheme, images, scheme.default_rates[0])
    msgs += [m for r in scheme.default_rates[1:] for m in encode_all(scheme, images, r)]
    receiver = create_receiver(unpack(msgs[0]).scheme_name)
    rng = random.Random(f"{seed}-{name}")
    counts: collections.Counter = collections.Counter()
    others: collections.Counter = collections.Counter()
    slowest = 0.0
    t_start = time.perf_counter()
    done = 0
    while done < n:
        m = min(batch_size, n - done)
        batch = [mutate(rng.choice(msgs), rng, KINDS[(done + i) % len(KINDS)]) for i in range(m)]
        t0 = time.perf_counter()
        try:
            out = receiver.decompress_batch([d for _, d in batch])
            rejected = sum(isinstance(o, BitstreamError) for o in out)
            counts["rejected"] += rejected
            counts["accepted"] += m - rejected
        except Exception:  # noqa: BLE001 - find which input it was
            _one_by_one(receiver, batch, counts, others)
        slowest = max(slowest, (time.perf_counter() - t0) / m)
        done += m
    wall = time.perf_counter() - t_start
    return {
        "inputs": done,
        **{k: counts[k] for k in ("accepted", "rejected", "other")},
        "slowest_ms_per_msg": 1000 * slowest,
        "inputs_per_s": done / wall,
        "others": others,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="inputs in all (default 1e6)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the mutations (default 0)")
    parser.add_argument("--batch", type=int, default=256, help="messages per batch (default 256)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    names = [s for s in list_schemes() if create_scheme(s).unavailable_reason() is None]
    per = -(-args.n // len(names))
    print(f"{args.n:,} inputs over {len(names)} receivers ({per:,} each), {len(KINDS)} kinds")
    print(f"{'scheme':16s}{'inputs':>10s}{'accepted':>10s}{'rejected':>10s}{'other':>7s}"
          f"{'slowest ms/msg':>16s}{'inputs/s':>10s}{'peak RSS MB':>13s}")  # fmt: skip
    total_other = 0
    for name in names:
        r = fuzz_scheme(name, per, args.seed, args.batch)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"{name:16s}{r['inputs']:>10,}{r['accepted']:>10,}{r['rejected']:>10,}"
              f"{r['other']:>7,}{r['slowest_ms_per_msg']:>16.2f}{r['inputs_per_s']:>10,.0f}"
              f"{rss:>13,.0f}", flush=True)  # fmt: skip
        for what, count in r["others"].most_common(5):
            print(f"    {count} x {what}")
        total_other += r["other"]
    print(f"exceptions other than BitstreamError: {total_other}")
    return 1 if total_other else 0


if __name__ == "__main__":
    sys.exit(main())
