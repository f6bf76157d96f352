"""Throughput of each channel on CPU (seconds per message, MB/s).

Usage::

    python benchmarks/bench_channel.py [--sizes 10000,1000000] [--phy]

``--phy`` adds the physical channel (torch backend; Sionna backend and LDPC when
installed -- LDPC belief propagation is slow on CPU, so it runs on 10 kB only).
"""

from __future__ import annotations

import argparse
import importlib.util
import time

import numpy as np
from _timing import timed

from semcom.channel import create_channel

BASIC = [
    "ideal",
    "budget:5000",
    "bsc:1e-4",
    "bsc:0.1",
    "erasure:0.1:1024",
    "erasure:0.1,64,burst=4",
]
PHY = ["awgn:snr_db=10,qam=16,backend=torch", "rayleigh:snr_db=10,qam=64,backend=torch"]
SIONNA = ["awgn:snr_db=10,qam=16", "rayleigh:snr_db=10,qam=64"]
SIONNA_LDPC = ["awgn:ebno_db=2,qam=4,ldpc=0.5", "rayleigh:snr_db=12,qam=16,ldpc=0.5"]


def bench(spec: str, size: int, repeat: int = 5) -> tuple[float, dict]:
    """Median seconds over ``repeat`` runs for one ``size``-byte message."""
    data = np.random.default_rng(0).integers(0, 256, size, dtype=np.uint8).tobytes()
    ch = create_channel(spec)
    rx, seconds = timed(lambda: ch(data), repeat)
    return seconds, rx.info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="10000,1000000")
    parser.add_argument("--phy", action="store_true")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    rows = [(spec, size) for spec in BASIC for size in sizes]
    if args.phy:
        rows += [(spec, size) for spec in PHY for size in sizes]
        if importlib.util.find_spec("sionna") is not None:
            t0 = time.perf_counter()
            create_channel("awgn:snr_db=0")
            print(f"sionna import + setup: {time.perf_counter() - t0:.2f} s")
            rows += [(spec, min(sizes)) for spec in SIONNA]
            rows += [(spec, 10_000) for spec in SIONNA_LDPC]
    print(f"{'channel':45s} {'bytes':>9s} {'seconds':>9s} {'MB/s':>8s}  ber")
    for spec, size in rows:
        sec, info = bench(spec, size, repeat=1 if "ldpc" in spec else 5)
        ber = info.get("ber", "")
        print(f"{spec:45s} {size:9d} {sec:9.4f} {size / sec / 1e6:8.2f}  {ber}")


if __name__ == "__main__":
    main()
