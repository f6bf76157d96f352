"""Benchmark the codec layer: entropy-coder overhead and speed, container parsing under fuzz.

    python benchmarks/bench_codec.py [--n 100000] [--repeats 5] [--fuzz 2000]

(a) For several symbol distributions, coded size against the empirical entropy
    ``n * H`` and throughput (median of ``--repeats`` runs) for every entropy-coding mode.
(b) ``unpack`` rate on valid messages and on random / bit-flipped / truncated inputs,
    counting outcomes: anything but a Message or a BitstreamError is a bug.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np
from _timing import print_head, timed

from semcom.codec import entropy as ec
from semcom.codec.container import SCHEME_IDS, Message, header_size, pack, unpack
from semcom.errors import BitstreamError


def distributions(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Named probability vectors (the alphabet size is the vector length)."""
    sparse = np.zeros(4096)
    sparse[rng.choice(4096, 20, replace=False)] = rng.random(20) + 0.1
    return {
        "uniform K=256": np.ones(256),
        "geometric(0.7) K=64": 0.7 ** np.arange(64),
        "zipf(1.2) K=256": 1 / np.arange(1, 257) ** 1.2,
        "zipf(1.2) K=1024": 1 / np.arange(1, 1025) ** 1.2,
        "sparse 20/4096": sparse,
        "binary p=0.02": np.array([0.98, 0.02]),
    }


Coder = tuple[Callable[[], bytes], Callable[[bytes], np.ndarray]]


def coders(sym: np.ndarray, k: int, p: np.ndarray) -> dict[str, Coder]:
    """Encode/decode closures of every entropy-coding mode for one symbol sequence."""
    n = sym.size
    return {
        "histogram": (
            lambda: ec.encode_with_histogram(sym, k),
            lambda d: ec.decode_with_histogram(d, k),
        ),
        "fixed(p)": (
            lambda: ec.encode_categorical(sym, p),
            lambda d: ec.decode_categorical(d, p, n),
        ),
        "adaptive": (lambda: ec.encode_adaptive(sym, k), lambda d: ec.decode_adaptive(d, k, n)),
        "auto": (lambda: ec.encode_auto(sym, k), lambda d: ec.decode_auto(d, k)),
    }


def bench_entropy(n: int, repeats: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    print(f"(a) entropy coding, n = {n} symbols, median of {repeats} runs")
    print_head(
        f"{'distribution':<20} {'H b/sym':>8} {'n*H bytes':>10} {'mode':<10} "
        f"{'bytes':>8} {'ratio':>7} {'enc Msym/s':>10} {'dec Msym/s':>10}"
    )
    for name, weights in distributions(rng).items():
        k = weights.size
        p = weights / weights.sum()
        sym = rng.choice(k, n, p=p)
        ent = ec.empirical_entropy_bits(sym, k) / 8
        modes = coders(sym, k, p)
        for i, (mode, (enc, dec)) in enumerate(modes.items()):
            data, t_enc = timed(enc, repeats)
            out, t_dec = timed(lambda dec=dec, data=data: dec(data), repeats)
            assert np.array_equal(out, sym), f"{name} {mode}: round trip failed"
            label = (name, f"{8 * ent / n:8.4f}", f"{ent:10.0f}") if i == 0 else ("", "", "")
            print(
                f"{label[0]:<20} {label[1]:>8} {label[2]:>10} {mode:<10} {len(data):>8} "
                f"{len(data) / ent:7.4f} {n / t_enc / 1e6:10.2f} {n / t_dec / 1e6:10.2f}"
            )
    print("ratio = coded bytes / (n * H(empirical) / 8); fixed(p) codes with the true p.")
    print()


def random_message(rng: np.random.Generator) -> Message:
    """A plausible message: a few fields, one to three sections of 20 B to 2 KiB."""
    fields: dict[str, Any] = {
        "h": int(rng.integers(1, 512)),
        "w": int(rng.integers(1, 512)),
        "q": float(np.float32(rng.random())),
        "shape": [int(v) for v in rng.integers(1, 64, 3)],
        "tag": "bench",
    }
    sections = {
        f"s{i}": rng.integers(0, 256, int(rng.integers(20, 2048)), dtype=np.uint8).tobytes()
        for i in range(int(rng.integers(1, 4)))
    }
    return Message(str(rng.choice(sorted(SCHEME_IDS))), fields, sections)


def bench_container(count: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    valid = [pack(random_message(rng)) for _ in range(200)]
    mean_size = statistics.mean(len(v) for v in valid)
    mean_head = statistics.mean(header_size(v) for v in valid)
    print(
        f"(c) container parsing: {count} inputs per row; valid messages average "
        f"{mean_size:.0f} bytes, header {mean_head:.1f} bytes"
    )

    def pick() -> bytes:
        return valid[int(rng.integers(len(valid)))]

    def flip(data: bytes, bits: int) -> bytes:
        out = bytearray(data)
        for b in rng.integers(0, len(out) * 8, bits):
            out[b // 8] ^= 1 << (b % 8)
        return bytes(out)

    def erase(data: bytes) -> tuple[bytes, list[tuple[int, int]]]:
        a = int(rng.integers(0, len(data)))
        b = min(len(data), a + int(rng.integers(1, 200)))
        return data[:a] + bytes(b - a) + data[b:], [(a, b)]

    magic = b"SMC\x00\x01"
    cases: dict[str, Callable[[], tuple[bytes, list[tuple[int, int]], bool]]] = {
        "valid": lambda: (pick(), [], False),
        "random bytes": lambda: (rng.bytes(int(rng.integers(0, 300))), [], False),
        "magic + random": lambda: (magic + rng.bytes(int(rng.integers(0, 300))), [], False),
        "1 bit flipped": lambda: (flip(pick(), 1), [], False),
        "1 bit flipped, damaged": lambda: (flip(pick(), 1), [], True),
        "8 bits flipped": lambda: (flip(pick(), 8), [], False),
        "truncated": lambda: ((d := pick())[: int(rng.integers(0, len(d)))], [], False),
        "truncated, damaged": lambda: ((d := pick())[: int(rng.integers(0, len(d)))], [], True),
        "erased, damaged": lambda: (*erase(pick()), True),
    }
    print_head(
        f"{'input':<24} {'msgs/s':>10} {'Message':>8} {'w/ damage':>9} "
        f"{'Bitstream':>9} {'other exc':>9}"
    )
    total_other = 0
    for name, make in cases.items():
        inputs = [make() for _ in range(count)]
        ok = damaged = rejected = other = 0
        t0 = time.perf_counter()
        for data, erasures, allow in inputs:
            try:
                msg = unpack(data, erasures=erasures, allow_damaged=allow)
            except BitstreamError:
                rejected += 1
            except Exception:  # noqa: BLE001 - counted, must stay zero
                other += 1
            else:
                ok += 1
                damaged += bool(msg.damaged)
        dt = time.perf_counter() - t0
        total_other += other
        print(f"{name:<24} {count / dt:10.0f} {ok:8d} {damaged:9d} {rejected:9d} {other:9d}")
    print(f"other exceptions in total: {total_other} (must be 0)")
    print()


def bench_entropy_fuzz(count: int, seed: int) -> None:
    """Junk and bit-flipped entropy streams: only BitstreamError or a valid-range decode."""
    rng = np.random.default_rng(seed)
    k = 64
    sym = rng.choice(k, 500, p=0.8 ** np.arange(k) / (0.8 ** np.arange(k)).sum())
    streams: dict[str, tuple[bytes, Callable[[bytes], np.ndarray]]] = {
        "histogram": (
            ec.encode_with_histogram(sym, k),
            lambda d: ec.decode_with_histogram(d, k, max_symbols=10_000),
        ),
        "adaptive": (ec.encode_adaptive(sym, k), lambda d: ec.decode_adaptive(d, k, sym.size)),
        "auto": (ec.encode_auto(sym, k), lambda d: ec.decode_auto(d, k, max_symbols=10_000)),
    }
    print(f"(b) entropy decoders on damaged streams ({count} inputs per row, 500 symbols, K=64)")
    print_head(
        f"{'coder':<10} {'input':<14} {'decodes/s':>10} {'decoded':>8} "
        f"{'Bitstream':>9} {'other':>6}"
    )
    for name, (enc, dec) in streams.items():
        for kind in ("random", "1 bit flipped", "truncated"):
            inputs = []
            for _ in range(count):
                if kind == "random":
                    inputs.append(rng.bytes(int(rng.integers(0, 2 * len(enc)))))
                elif kind == "truncated":
                    inputs.append(enc[: int(rng.integers(0, len(enc)))])
                else:
                    b = int(rng.integers(0, 8 * len(enc)))
                    out = bytearray(enc)
                    out[b // 8] ^= 1 << (b % 8)
                    inputs.append(bytes(out))
            decoded = rejected = other = 0
            t0 = time.perf_counter()
            for data in inputs:
                try:
                    out_sym = dec(data)
                except BitstreamError:
                    rejected += 1
                    continue
                except Exception:  # noqa: BLE001 - counted, must stay zero
                    other += 1
                    continue
                decoded += 1
                if out_sym.size and (out_sym.min() < 0 or out_sym.max() >= k):
                    other += 1
            dt = time.perf_counter() - t0
            print(f"{name:<10} {kind:<14} {count / dt:10.0f} {decoded:8d} {rejected:9d} {other:6d}")
    print()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="symbols per entropy-coding run")
    ap.add_argument("--repeats", type=int, default=5, help="timing runs (median reported)")
    ap.add_argument("--fuzz", type=int, default=2000, help="inputs per fuzzing row")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    bench_entropy(args.n, args.repeats, args.seed)
    bench_entropy_fuzz(max(1, args.fuzz // 4), args.seed)
    bench_container(args.fuzz, args.seed)


if __name__ == "__main__":
    main()
