"""Benchmark semcom's ViT: achieved FLOP/s and attention-rollout memory.

(a) Throughput: forward of each ``--arch`` (default ``vit-tiny-synth`` and
    ``vit-edge-synth``, the transmitter's ViT of the patch schemes; batch 256, 64x64,
    mean CLS attention requested) in FLOP/s, counted analytically with
    ``semcom.models.vit.count_flops``, as a fraction of this machine's float32 matmul
    rate (``torch.matmul`` of large square matrices, same thread count).
(b) Rollout memory: peak resident-memory increase of a DeiT-Tiny-sized model (224 px,
    patch 16, dim 192, depth 12, 3 heads) computing attention rollout
    (i) layer by layer (``forward(return_attention="rollout")``) and
    (ii) the store-every-layer way (all 12 ``(N, H, T, T)`` attention maps kept, then
    multiplied). Each measurement runs in a fresh subprocess and reports (1) the peak of
    torch's CPU allocator (running sum of the profiler's allocation/free records -- exact
    and independent of the OS) and (2) the resident-memory increase (``ru_maxrss`` minus
    the RSS just before the call, glibc's mmap threshold pinned so freed blocks go back to
    the OS); medians of several runs. The analytic model of both is extrapolated to
    batch 1024.

Usage::

    python benchmarks/bench_vit.py [--repeats 5] [--batch 256] [--rollout-batch 64]
                                   [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

import torch

from semcom.models.vit import VisionTransformer, count_flops, create_vit

DEIT_TINY = dict(
    img_size=224, patch_size=16, embed_dim=192, depth=12, num_heads=3, num_classes=1000
)


def _median_time(fn, repeats: int, warmup: int = 1) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def matmul_rate(n: int, repeats: int) -> float:
    """Median float32 FLOP/s of ``torch.matmul`` on two ``(n, n)`` matrices."""
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    b = torch.randn(n, n, generator=g)
    sec = _median_time(lambda: torch.matmul(a, b), repeats)
    return 2 * n**3 / sec


@torch.no_grad()
def vit_rate(batch: int, repeats: int, arch: str = "vit-tiny-synth") -> tuple[float, int, float]:
    """(FLOP/s, FLOPs per forward, seconds) of ``arch`` with mean attention."""
    torch.manual_seed(0)
    model = create_vit(arch, num_classes=10).eval()
    x = torch.rand(batch, 3, 64, 64)
    flops = count_flops(model, batch, return_attention="mean")
    sec = _median_time(lambda: model(x, return_attention="mean"), repeats)
    return flops / sec, flops, sec


# --------------------------------------------------------------- rollout memory
def rollout_store_all(model: VisionTransformer, x: torch.Tensor) -> torch.Tensor:
    """Reference-style rollout: keep every layer's attention, then multiply.
    Returns the CLS-row patch scores (N, P)."""
    maps = model.attention_maps(x)  # depth x (N, H, T, T), all alive
    eye = torch.eye(maps[0].shape[-1])
    result = eye.expand_as(maps[0][:, 0]).clone()
    for a in maps:
        f = 0.5 * a.mean(dim=1) + 0.5 * eye
        f = f / f.sum(dim=-1, keepdim=True)
        result = f @ result
    row = result[:, 0, model.num_prefix_tokens :]
    return row / row.sum(dim=1, keepdim=True)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def allocator_peak_bytes(fn) -> int:
    """Peak bytes held by torch's CPU allocator during ``fn()``, above what was held
    before: the running sum of the profiler's allocation / free records, in time order."""
    with torch.profiler.profile(
        activities=[torch.profiler.ProfilerActivity.CPU], profile_memory=True
    ) as prof:
        fn()
    records = sorted(
        (e.start_ns(), e.nbytes())
        for e in prof.profiler.kineto_results.events()
        if e.name() == "[memory]"
    )
    held = peak = 0
    for _, nbytes in records:
        held += nbytes
        peak = max(peak, held)
    return peak


def _child(kind: str, batch: int) -> None:
    """Runs in a fresh subprocess: print the peak memory increase (bytes) of one rollout
    call, as resident memory (``ru_maxrss`` minus RSS before) and as torch-allocator
    bytes (profiler records, measured afterwards in a second call)."""
    torch.manual_seed(0)
    model = VisionTransformer(**DEIT_TINY).eval()
    x = torch.rand(batch, 3, 224, 224)

    def call() -> torch.Tensor:
        if kind == "layerwise":
            return model(x, return_attention="rollout")["attention"]
        return rollout_store_all(model, x)

    with torch.no_grad():
        # warm the kernels on one image so lazy initialisation is not counted
        model(x[:1], return_attention="rollout")
        rollout_store_all(model, x[:1])
        before = _rss_bytes()
        scores = call()
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        del scores
        alloc = allocator_peak_bytes(call)
    print(json.dumps({"rss": peak - before, "alloc": alloc}))


def measure_rollout_peak(kind: str, batch: int) -> dict[str, int]:
    """``{"rss": bytes, "alloc": bytes}`` from a fresh subprocess."""
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="65536")
    out = subprocess.run(
        [sys.executable, __file__, "--_child", kind, "--rollout-batch", str(batch)],
        check=True,
        capture_output=True,
        text=True,
        env=env,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def analytic_rollout_bytes(batch: int, cfg: dict = DEIT_TINY) -> dict[str, int]:
    """Approximate peak bytes (float32) of the two rollout variants.

    Layer by layer: one layer's attention ``N H T^2`` (softmax in place) plus at most
    ``3 N T^2`` (running product, new factor, new product). Store-all: all ``L`` maps,
    ``L N H T^2``, plus the same ``3 N T^2`` while multiplying. Both add the per-layer
    activations (largest: MLP hidden ``N T 4D`` and its GELU output, plus ~3 ``N T D``
    residual-stream tensors), identical for the two; the sum is an upper bound because
    the attention and MLP peaks of a layer do not coincide.
    """
    t = (cfg["img_size"] // cfg["patch_size"]) ** 2 + 1
    n, h, depth, d = batch, cfg["num_heads"], cfg["depth"], cfg["embed_dim"]
    f = 4
    act = f * n * t * (2 * 4 * d + 3 * d)
    layerwise = f * (n * h * t * t + 3 * n * t * t)
    store_all = f * (depth * n * h * t * t + 3 * n * t * t)
    return {"activations": act, "layerwise": layerwise + act, "store_all": store_all + act}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--matmul-n", type=int, default=2048)
    ap.add_argument("--rollout-batch", type=int, default=64)
    ap.add_argument("--memory-runs", type=int, default=3)
    ap.add_argument("--json", type=str, default=None)
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument(
        "--arch",
        action="append",
        default=None,
        help="ViT architecture(s) to time (repeatable; default vit-tiny-synth and vit-edge-synth)",
    )
    ap.add_argument("--_child", choices=["layerwise", "store_all"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args._child:
        _child(args._child, args.rollout_batch)
        return

    result: dict = {"threads": torch.get_num_threads(), "torch": torch.__version__}
    if not args.skip_throughput:
        mm = matmul_rate(args.matmul_n, args.repeats)
        result["throughput"] = []
        for arch in args.arch or ["vit-tiny-synth", "vit-edge-synth"]:
            rate, flops, sec = vit_rate(args.batch, args.repeats, arch)
            result["throughput"].append(
                {
                    "matmul_n": args.matmul_n,
                    "matmul_gflops": mm / 1e9,
                    "vit": arch,
                    "batch": args.batch,
                    "forward_gflop": flops / 1e9,
                    "forward_s_median": sec,
                    "vit_gflops": rate / 1e9,
                    "fraction_of_matmul": rate / mm,
                }
            )
            print(
                f"[throughput] matmul {args.matmul_n}^2 float32: {mm / 1e9:.1f} GFLOP/s; "
                f"{arch} batch {args.batch} (mean attention): {flops / 1e9:.1f} GFLOP "
                f"in {sec:.3f} s = {rate / 1e9:.1f} GFLOP/s = {rate / mm:.1%} of matmul "
                f"({torch.get_num_threads()} threads)"
            )

    n = args.rollout_batch
    mib = 2**20
    runs = {
        kind: [measure_rollout_peak(kind, n) for _ in range(args.memory_runs)]
        for kind in ("layerwise", "store_all")
    }
    alloc = {k: statistics.median(r["alloc"] for r in v) for k, v in runs.items()}
    rss = {k: statistics.median(r["rss"] for r in v) for k, v in runs.items()}
    model = analytic_rollout_bytes(n)
    big = analytic_rollout_bytes(1024)
    result["rollout_memory"] = {
        "model": "DeiT-Tiny size (224/16, dim 192, depth 12, 3 heads)",
        "batch": n,
        "allocator_peak_mib": {k: v / mib for k, v in alloc.items()},
        "rss_peak_increase_mib": {k: v / mib for k, v in rss.items()},
        "runs_mib": {k: [{m: b / mib for m, b in r.items()} for r in v] for k, v in runs.items()},
        "allocator_ratio_store_all_over_layerwise": alloc["store_all"] / alloc["layerwise"],
        "rss_ratio_store_all_over_layerwise": rss["store_all"] / rss["layerwise"],
        "analytic_mib": {k: v / mib for k, v in model.items()},
        "analytic_ratio": model["store_all"] / model["layerwise"],
        "analytic_batch_1024_mib": {k: v / mib for k, v in big.items()},
        "analytic_ratio_batch_1024": big["store_all"] / big["layerwise"],
    }
    print(
        f"[rollout memory] batch {n}, medians of {args.memory_runs} fresh processes: "
        f"torch-allocator peak layer-by-layer {alloc['layerwise'] / mib:.0f} MiB vs "
        f"store-all {alloc['store_all'] / mib:.0f} MiB "
        f"(ratio {alloc['store_all'] / alloc['layerwise']:.2f}); RSS increase "
        f"{rss['layerwise'] / mib:.0f} vs {rss['store_all'] / mib:.0f} MiB "
        f"(ratio {rss['store_all'] / rss['layerwise']:.2f}); analytic "
        f"{model['layerwise'] / mib:.0f} vs {model['store_all'] / mib:.0f} MiB "
        f"(ratio {model['store_all'] / model['layerwise']:.2f})"
    )
    print(
        f"[rollout memory] analytic batch 1024: layer-by-layer {big['layerwise'] / mib:.0f} MiB, "
        f"store-all {big['store_all'] / mib:.0f} MiB "
        f"(ratio {big['store_all'] / big['layerwise']:.2f})"
    )
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(result, fh, indent=2)


if __name__ == "__main__":
    main()
