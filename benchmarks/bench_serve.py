"""Load benchmark of `semcom serve`: requests/s and latency under concurrent clients.

Starts `semcom serve` in a subprocess on a free loopback port, then C concurrent
keep-alive HTTP/1.1 clients (one asyncio process, lean raw-socket clients so the client
costs as little of the shared CPU as possible) POST pre-made messages for a bounded
time or count each. Measured, median over ``--runs`` runs:

* ``noop``: the server's /v1/noop endpoint (reads the body, answers a fixed JSON): the
  HTTP ceiling of this machine with this client;
* ``receive``: /v1/receive with dynamic batching (``--max-batch``, ``--max-wait-ms``);
* ``receive, batch 1``: the same with ``--max-batch 1``.

Prints requests/s, p50 / p99 latency, answered / rejected (503) / other, the ratio to
the ceiling, the gain of batching over batch size 1, and checks that every request sent
got exactly one answer (exit 1 if not).

    .venv/bin/python benchmarks/bench_serve.py                       # collab, zoo models
    .venv/bin/python benchmarks/bench_serve.py --scheme 'collab[server=CKPT]' --clients 8
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_messages(spec: str, n: int, eta: float | None) -> list[bytes]:
    """``n`` messages of ``spec`` for synthetic 64x64 test images (collab: every image
    offloaded, ``gate=always``, unless ``eta`` is given)."""
    import torch

    from semcom.experiments.sweep import synthetic_evalset
    from semcom.schemes import create_scheme

    torch.set_num_threads(1)
    sch = create_scheme(spec)
    ev = synthetic_evalset(n)
    rate = eta if eta is not None else sch.default_rates[len(sch.default_rates) // 2]
    msgs = [m for tx in sch.transmit_batch(ev.images, rate) for m in tx.messages]
    if not msgs:
        raise SystemExit(f"{spec} at {rate} sent no message for {n} images")
    return msgs


def start_server(
    spec: str, port: int, max_batch: int, max_wait_ms: float, threads: int
) -> subprocess.Popen:
    cmd = [
        str(ROOT / ".venv" / "bin" / "semcom"), "serve", "--scheme", spec, "--port", str(port),
        "--max-batch", str(max_batch), "--max-wait-ms", str(max_wait_ms),
        "--threads", str(threads), "--max-queue", "1024", "--judge", "none",
    ]  # fmt: skip
    if not Path(cmd[0]).exists():
        cmd[0:1] = [sys.executable, "-m", "semcom"]
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5) as s:
                s.sendall(b"GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b"200" in s.recv(64):
                    return proc
        except OSError:
            time.sleep(0.1)
        if proc.poll() is not None:
            raise SystemExit(f"server exited: {proc.stderr.read().decode()[-500:]}")
    proc.kill()
    raise SystemExit("server did not start within 60 s")


async def _client(port: int, path: str, bodies: list[bytes], offset: int, until: float,
                  limit: int, out: dict) -> None:  # fmt: skip
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    head = f"POST {path} HTTP/1.1\r\nHost: bench\r\nContent-Type: application/octet-stream\r\n"
    sent = 0
    try:
        while sent < limit and time.perf_counter() < until:
            body = bodies[(offset + sent) % len(bodies)]
            t0 = time.perf_counter()
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
            sent += 1
            out["sent"] += 1
            status_line = await reader.readline()
            length = 0
            while True:
                line = await reader.readline()
                if line in (b"\r\n", b""):
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            await reader.readexactly(length)
            code = int(status_line.split()[1])
            out["latency"].append(time.perf_counter() - t0)
            out["codes"][code] = out["codes"].get(code, 0) + 1
    finally:
        writer.close()


def load(
    port: int, path: str, bodies: list[bytes], clients: int, seconds: float, limit: int
) -> dict:
    out: dict = {"sent": 0, "latency": [], "codes": {}}

    async def main() -> float:
        until = time.perf_counter() + seconds
        t0 = time.perf_counter()
        await asyncio.gather(*(
            _client(port, path, bodies, i * 7, until, limit, out) for i in range(clients)
        ))  # fmt: skip
        return time.perf_counter() - t0

    wall = asyncio.run(main())
    lat = sorted(out["latency"])
    answered = len(lat)
    return {
        "rps": answered / wall,
        "p50_ms": 1000 * lat[len(lat) // 2] if lat else float("nan"),
        "p99_ms": 1000 * lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else float("nan"),
        "sent": out["sent"],
        "answered": answered,
        "ok": out["codes"].get(200, 0),
        "rejected_503": out["codes"].get(503, 0),
        "other": answered - out["codes"].get(200, 0) - out["codes"].get(503, 0),
    }


def measure(spec, bodies, args, max_batch: int) -> dict[str, list[dict]]:
    port = free_port()
    proc = start_server(spec, port, max_batch, args.max_wait_ms, args.threads)
    try:
        load(port, "/v1/receive", bodies, args.clients, 1.0, 50)  # warm-up
        runs: dict[str, list[dict]] = {"noop": [], "receive": []}
        for _ in range(args.runs):
            for name, path in (("noop", "/v1/noop"), ("receive", "/v1/receive")):
                if name == "noop" and max_batch == 1:
                    continue
                runs[name].append(load(port, path, bodies, args.clients, args.seconds, args.limit))
        return runs
    finally:
        proc.terminate()
        proc.wait(10)


def median_of(runs: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in runs)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--scheme", default="collab[gate=always]", help="scheme the server hosts")
    p.add_argument("--eta", type=float, default=None, help="rate for making the messages")
    p.add_argument("--clients", type=int, default=8, help="concurrent clients")
    p.add_argument("--seconds", type=float, default=4.0, help="length of one run")
    p.add_argument("--limit", type=int, default=4000, help="most requests per client per run")
    p.add_argument("--runs", type=int, default=3, help="runs per setting (median reported)")
    p.add_argument("--max-batch", type=int, default=32, help="the server's --max-batch")
    p.add_argument("--max-wait-ms", type=float, default=2.0, help="the server's --max-wait-ms")
    p.add_argument("--threads", type=int, default=1, help="the server's torch threads")
    p.add_argument("--messages", type=int, default=64, help="distinct messages cycled through")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args()

    bodies = make_messages(args.scheme, args.messages, args.eta)
    mean_bytes = sum(map(len, bodies)) / len(bodies)
    batched = measure(args.scheme, bodies, args, args.max_batch)
    single = measure(args.scheme, bodies, args, 1)
    rows = [("noop (ceiling)", batched["noop"]), (f"receive, batch <= {args.max_batch}",
            batched["receive"]), ("receive, batch 1", single["receive"])]  # fmt: skip
    print(f"scheme {args.scheme}: {len(bodies)} messages, mean {mean_bytes:.0f} B; "
          f"{args.clients} clients, {args.runs} runs of {args.seconds:g} s, median")  # fmt: skip
    print(f"{'endpoint':28s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'answered':>9s} "
          f"{'503':>5s} {'other':>6s}")  # fmt: skip
    lost = 0
    for name, runs in rows:
        for r in runs:
            lost += r["sent"] - r["answered"]
        answered = sum(r["answered"] for r in runs)
        busy, other = sum(r["rejected_503"] for r in runs), sum(r["other"] for r in runs)
        print(f"{name:28s} {median_of(runs, 'rps'):8.0f} {median_of(runs, 'p50_ms'):8.2f} "
              f"{median_of(runs, 'p99_ms'):8.2f} {answered:9d} {busy:5d} {other:6d}")  # fmt: skip
    ceiling = median_of(batched["noop"], "rps")
    rps = median_of(batched["receive"], "rps")
    rps1 = median_of(single["receive"], "rps")
    print(f"receive / ceiling: {rps / ceiling:.1%}; batching over batch 1: {rps / rps1:.2f}x")
    print(f"requests sent without an answer: {lost}")
    if args.json:
        args.json.write_text(json.dumps({"ceiling_rps": ceiling, "rps": rps, "rps_batch1": rps1,
                                         "runs": rows}, default=str, indent=1))  # fmt: skip
    return 0 if lost == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
