"""Time whole ``semcom`` commands in fresh processes: what a user waits for, imports included.

Usage: ``python benchmarks/bench_startup.py [--runs 7] [--size 64]``.

Makes a ``size x size`` synthetic PNG and two messages from it (``jpeg`` at 600 bytes,
``patch-mean`` at rate 0.25) in a temporary folder, then runs each command ``--runs``
times as a new process (the ``semcom`` console script next to this Python) and prints
the median and fastest wall seconds. Two floors come with them: ``python -c "pass"``
(interpreter start) and ``python -c "import torch"`` (what any command that runs a torch
judge pays before anything else). The last column lists the heavy top-level packages the
command imported (torch, matplotlib, sionna, scipy, ...), from one more in-process run
in a fresh interpreter; ``x torch`` is the median over ``import torch``'s. Timings on a
busy machine are inflated: compare a command with the floors measured in the same run.
The last row (``OMP_NUM_THREADS=1``) separates the judges' intra-op thread contention on a
busy machine from import time.

With ``PYTHONDONTWRITEBYTECODE`` set, modules lacking a ``.pyc`` are compiled on every
run; ``PYTHONDONTWRITEBYTECODE= PYTHONPYCACHEPREFIX=/tmp/pyc python benchmarks/...``
measures what an installed copy does (caches written outside the tree, warmed by the
untimed first run of each command).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HEAVY = ("torch", "matplotlib", "sionna", "tensorflow", "scipy", "PIL", "numpy", "rich")

# In a fresh interpreter: run the CLI in-process and print the heavy packages it loaded.
_PROBE = f"""
import contextlib, io, json, sys
import semcom.cli
with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
    rc = semcom.cli.main(json.loads(sys.argv[1]))
print(json.dumps([rc, sorted({{m.split(".")[0] for m in sys.modules}} & set({HEAVY!r}))]))
"""

# (label, semcom arguments, extra environment): the commands timed after the floors
COMMANDS: list[tuple[str, str, dict[str, str]]] = [
    ("--help", "--help", {}),
    ("inspect MSG", "inspect jpeg.smc", {}),
    ("channels", "channels", {}),
    ("schemes", "schemes", {}),
    ("send IMG jpeg 600", "send img.png --scheme jpeg --rate 600 -o out-jpeg.smc", {}),
    ("receive JPEG_MSG", "receive jpeg.smc", {}),
    ("send IMG patch-mean 0.25", "send img.png --scheme patch-mean --rate 0.25 -o out.smc", {}),
    ("receive PATCH_MSG", "receive patch.smc", {}),
    # diagnostic: the judges' intra-op threads contend on a busy machine (not imports)
    ("receive JPEG_MSG, OMP_NUM_THREADS=1", "receive jpeg.smc", {"OMP_NUM_THREADS": "1"}),
]


def make_png(path: Path, size: int) -> None:
    """A smooth synthetic image with an edge and mild noise (no semcom import needed)."""
    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:size, 0:size] / size
    a = np.stack([np.sin(6 * x + 1) * 0.5 + 0.5, np.cos(4 * y) * 0.5 + 0.5, x * y], -1)
    a[size // 4 : size // 2, size // 4 : 3 * size // 4] = [0.9, 0.2, 0.1]
    a += rng.normal(0, 0.01, a.shape)
    Image.fromarray((np.clip(a, 0, 1) * 255).round().astype(np.uint8)).save(path)


def semcom_exe() -> list[str]:
    exe = Path(sys.executable).with_name("semcom")
    if exe.exists():
        return [str(exe)]
    found = shutil.which("semcom")
    return [found] if found else [sys.executable, "-m", "semcom.cli"]


def run_once(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    t0 = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    dt = time.perf_counter() - t0
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed ({p.returncode}): {p.stderr.decode()[-500:]}")
    return dt


def heavy_imports(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    p = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        cwd=cwd, env=env, capture_output=True, text=True,
    )  # fmt: skip
    if p.returncode != 0:
        return f"(probe failed: {p.stderr.strip().splitlines()[-1:]})"
    rc, mods = json.loads(p.stdout.strip().splitlines()[-1])
    return (",".join(mods) or "-") + ("" if rc == 0 else f" (rc {rc})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=7, help="fresh processes per command")
    ap.add_argument("--size", type=int, default=64, help="side of the synthetic PNG")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="semcom-startup-"))
    try:
        make_png(tmp / "img.png", args.size)
        semcom = semcom_exe()
        if os.environ.get("PYTHONDONTWRITEBYTECODE"):
            print("note: PYTHONDONTWRITEBYTECODE is set: modules without a .pyc compile each run")
        for msg in ("jpeg --rate 600 -o jpeg.smc", "patch-mean --rate 0.25 -o patch.smc"):
            run_once([*semcom, "send", "img.png", "--scheme", *msg.split()], tmp)

        # (label, argv for the import probe or None, command, environment or None)
        cases: list[tuple[str, list[str] | None, list[str], dict[str, str] | None]] = [
            ('python -c "pass"', None, [sys.executable, "-c", "pass"], None),
            ('python -c "import torch"', None, [sys.executable, "-c", "import torch"], None),
        ]
        for label, argv, extra in COMMANDS:
            env = {**os.environ, **extra} if extra else None
            cases.append((f"semcom {label}", argv.split(), [*semcom, *argv.split()], env))

        print(
            f"{args.runs} fresh processes each (after one untimed run), {args.size}x{args.size} "
            f"PNG, python {sys.version.split()[0]}, {os.cpu_count()} CPUs, "
            f"load average {os.getloadavg()[0]:.1f}"
        )
        wide = max(len(c[0]) for c in cases)
        print(f"{'command':{wide}} {'median s':>9} {'min s':>7} {'x torch':>8}  heavy imports")
        torch_median = None
        for name, argv, cmd, env in cases:
            run_once(cmd, tmp, env)  # warm the file cache (and any .pyc cache)
            times = [run_once(cmd, tmp, env) for _ in range(args.runs)]
            med = statistics.median(times)
            if torch_median is None and "import torch" in name:
                torch_median = med
            ratio = f"{med / torch_median:8.2f}" if torch_median else " " * 8
            mods = heavy_imports(argv, tmp, env) if argv is not None else ""
            print(f"{name:{wide}} {med:9.3f} {min(times):7.3f} {ratio}  {mods}", flush=True)
        print(f"load average now {os.getloadavg()[0]:.1f}")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
