"""Collaborative inference experiments: the sweep grid, the Pareto frontier, the
paper-style summary table and the comparisons of Im et al.'s findings.

* :func:`grid_specs` -- ``collab`` scheme specs for every gate x attention x rule, each
  with its gate's thresholds ``eta`` as rates, plus the client-only (``gate=never``) and
  server-only (``gate=always``, every patch) references;
* :func:`summarise` -- from the sweep's records (family ``collaborative``): one row per
  point (tokens sent, confident images, the paper's cost, bytes, accuracy), the
  frontier of accuracy against bytes and against the paper's cost, and the findings:
  mean vs rollout attention (paired points: same gate, rule and threshold),
  threshold vs top-k rules and min-entropy vs Shannon entropy vs margin gates (each
  side's own frontier, averaged over the byte range both cover);
* :func:`collab_figure` -- the two frontiers as a PNG; :func:`write_summary` -- the
  table and findings as ``collab.md`` and ``collab.json``;
* ``python -m semcom.experiments.collab`` -- the whole run (sweep, report, summary).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semcom.errors import InputError
from semcom.experiments.records import PointRecord

__all__ = ["collab_figure", "frontier", "grid_specs", "main", "summarise", "write_summary"]

GATES = ("min-entropy", "entropy", "margin")
ATTENTIONS = ("mean", "rollout", "rollout-ref")
#: Default rules: the paper's cumulative-sum (mass) and threshold rules, top-k, random.
RULES = ("mass:0.5", "mass:0.75", "threshold:0.02", "topk:8", "topk:16", "rate:0.25")


def _models(edge: str, server: str, extra: str) -> str:
    parts = [f"edge={edge}", f"server={server}"]
    if extra:
        parts.append(extra)
    return ",".join(parts)


def grid_specs(
    edge: str,
    server: str,
    *,
    gates: Sequence[str] = GATES,
    attentions: Sequence[str] = ATTENTIONS,
    rules: Sequence[str] = RULES,
    etas: dict[str, Sequence[float]] | None = None,
    extra: str = "",
) -> list[str]:
    """Scheme specs of the grid (labels ``collab:<gate>:<attention>:<rule>``; a random
    baseline ``collab:<gate>:random:rate:R`` for each ``rate:R`` rule), with the
    client-only and server-only references first."""
    from semcom.schemes.collab import DEFAULT_ETAS

    m = _models(edge, server, extra)
    specs = [
        f"collab[{m},gate=never,label=client-only]",
        f"collab[{m},gate=always,rule=rate:1.0,label=server-only]",
    ]
    for gate in gates:
        rates = "/".join(f"{e:g}" for e in (etas or {}).get(gate, DEFAULT_ETAS[gate]))
        for att in attentions:
            for rule in rules:
                specs.append(
                    f"collab[{m},gate={gate},attention={att},rule={rule},rates={rates},"
                    f"label=collab:{gate}:{att}:{rule}]"
                )
        for rule in rules:
            if rule.startswith("rate:"):
                specs.append(
                    f"collab[{m},gate={gate},attention=random,rule={rule},rates={rates},"
                    f"label=collab:{gate}:random:{rule}]"
                )
    return specs


def frontier(points: Sequence[tuple[float, float]]) -> list[tuple[float, float]]:
    """The upper-left frontier of ``(cost, accuracy)`` points: sorted by cost, a point
    kept only when it is more accurate than every cheaper one."""
    out: list[tuple[float, float]] = []
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if not out or y > out[-1][1]:
            if out and x == out[-1][0]:
                continue
            out.append((x, y))
    return out


def _mean_over(front: list[tuple[float, float]], lo: float, hi: float, n: int = 64) -> float:
    """Mean of the frontier's step function (best accuracy at cost <= x) over
    ``[lo, hi]``; NaN when the frontier starts after ``lo``."""
    if not front or front[0][0] > lo or hi <= lo:
        return math.nan
    total = 0.0
    for k in range(n):
        x = lo + (hi - lo) * (k + 0.5) / n
        total += max(y for c, y in front if c <= x)
    return total / n


def _row(rec: PointRecord, metric: str) -> dict[str, Any]:
    s = rec.settings
    return {
        "label": rec.scheme,
        "gate": s.get("gate"),
        "attention": s.get("attention"),
        "rule": s.get("rule"),
        "eta": s.get("eta"),
        "confident": round(1.0 - rec.cost.get("offload_fraction", 0.0), 4),
        "tokens_per_offload": round(rec.cost.get("patches_per_offload", 0.0), 2),
        "cost": round(rec.cost.get("patch_fraction", 0.0), 4),
        "bytes": round(rec.mean_bytes, 1),
        metric: rec.metrics.get(metric, math.nan),
        "channel": rec.channel,
    }


def summarise(records: Sequence[PointRecord], metric: str = "accuracy") -> dict[str, Any]:
    """The summary of the collaborative records (see the module docstring)."""
    recs = [r for r in records if r.family == "collaborative" and metric in r.metrics]
    if not recs:
        raise InputError("no collaborative records with " + metric)
    channel = recs[0].channel
    recs = [r for r in recs if r.channel == channel]
    rows = [_row(r, metric) for r in recs]
    client = [r for r in rows if r["gate"] == "never"]
    server = [r for r in rows if r["gate"] == "always" and r["rule"] == "rate:1.0"]
    swept = [r for r in rows if r["gate"] not in ("never", "always")]
    out: dict[str, Any] = {"metric": metric, "channel": channel, "n_images": recs[0].n_images}
    if client:
        out["client_only"] = client[0][metric]
    if server:
        out["server_only"] = server[0][metric]
        out["server_only_bytes"] = server[0]["bytes"]
    for axis in ("bytes", "cost"):
        pts = [(r[axis], r[metric]) for r in swept + client]
        out[f"frontier_{axis}"] = frontier(pts)
    out["rows"] = rows
    out["findings"] = _findings(swept, client, metric, out.get("server_only_bytes"))
    out["targets"] = _targets(out, swept, metric)
    return out


def _targets(out: dict[str, Any], swept: list[dict[str, Any]], metric: str) -> dict[str, Any]:
    """The cheapest point within 1 point of server-only, its share of server-only bytes,
    and its gain over client-only (the issue's numbers)."""
    if "server_only" not in out or "client_only" not in out:
        return {}
    goal = out["server_only"] - 0.01
    near = [r for r in swept if r[metric] >= goal]
    best = min(near, key=lambda r: r["bytes"]) if near else max(swept, key=lambda r: r[metric])
    return {
        "point": best["label"] + f" eta={best['eta']:g}",
        metric: best[metric],
        "bytes": best["bytes"],
        "share_of_server_bytes": best["bytes"] / out["server_only_bytes"],
        "over_client_only": best[metric] - out["client_only"],
        "within_1_point_of_server": bool(near),
    }


def _findings(
    swept: list[dict[str, Any]],
    client: list[dict[str, Any]],
    metric: str,
    server_bytes: float | None,
) -> list[dict[str, Any]]:
    """The paper's three comparisons on these records.

    * attention (mean vs rollout vs rollout-ref vs random): *paired* -- points with the
      same gate, rule and threshold differ only in the patches chosen; the mean
      accuracy difference over those pairs (and the mean bytes of each side);
    * rules (threshold vs top-k, mass vs top-k) and gates (min-entropy vs entropy vs
      margin): each side's frontier of accuracy against bytes (its own points only),
      averaged over the byte range both cover.
    """
    out: list[dict[str, Any]] = []
    for a, b in (("mean", "rollout"), ("rollout", "rollout-ref"), ("mean", "random")):
        by_key = {}
        for r in swept:
            by_key.setdefault((r["gate"], r["rule"], r["eta"]), {})[r["attention"]] = r
        pairs = [(v[a], v[b]) for v in by_key.values() if a in v and b in v]
        if not pairs:
            continue
        diff = sum(x[metric] - y[metric] for x, y in pairs) / len(pairs)
        out.append({
            "question": f"attention: {a} vs {b}", "how": f"{len(pairs)} paired points",
            a: round(sum(x[metric] for x, _ in pairs) / len(pairs), 4),
            b: round(sum(y[metric] for _, y in pairs) / len(pairs), 4),
            "difference": round(diff, 4),
            "better": a if diff > 0 else b if diff < 0 else "tie",
        })  # fmt: skip
    families = (
        ("rule", "threshold", "topk", lambda r: str(r["rule"]).split(":")[0]),
        ("rule", "mass", "topk", lambda r: str(r["rule"]).split(":")[0]),
        ("gate", "min-entropy", "entropy", lambda r: r["gate"]),
        ("gate", "min-entropy", "margin", lambda r: r["gate"]),
        ("gate", "entropy", "margin", lambda r: r["gate"]),
    )
    for what, a, b, key in families:
        pa = [(r["bytes"], r[metric]) for r in swept if key(r) == a]
        pb = [(r["bytes"], r[metric]) for r in swept if key(r) == b]
        if not pa or not pb:
            continue
        fa, fb = frontier(pa), frontier(pb)
        lo = max(fa[0][0], fb[0][0])
        hi = min(max(x for x, _ in pa), max(x for x, _ in pb))
        va, vb = _mean_over(fa, lo, hi), _mean_over(fb, lo, hi)
        if math.isnan(va) or math.isnan(vb):
            continue
        out.append({
            "question": f"{what}: {a} vs {b}",
            "how": f"frontiers over {lo:.0f}..{hi:.0f} B",
            a: round(va, 4), b: round(vb, 4), "difference": round(va - vb, 4),
            "better": a if va > vb else b if vb > va else "tie",
        })  # fmt: skip
    return out


def collab_figure(summary: dict[str, Any], path: Path) -> Path:
    """Accuracy against bytes and against the paper's cost: every point, the frontier,
    client-only and server-only."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    metric = summary["metric"]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    colours = {"min-entropy": "tab:blue", "entropy": "tab:orange", "margin": "tab:green"}
    for ax, axis, xlabel in (
        (axes[0], "bytes", "bytes per image (all images, 0 for confident ones)"),
        (axes[1], "cost", "paper's cost (offloaded share x patch share)"),
    ):
        for gate, colour in colours.items():
            pts = [(r[axis], r[metric]) for r in summary["rows"] if r["gate"] == gate]
            if pts:
                ax.scatter(*zip(*pts, strict=True), s=9, alpha=0.35, color=colour, label=gate)
        front = summary[f"frontier_{axis}"]
        if front:
            ax.step(*zip(*front, strict=True), where="post", color="black", lw=1.4,
                    label="frontier (all)")  # fmt: skip
        for key, style in (("client_only", ":"), ("server_only", "--")):
            if key in summary:
                ax.axhline(summary[key], ls=style, color="grey", lw=1,
                           label=f"{key.replace('_', '-')} {summary[key]:.3f}")  # fmt: skip
        ax.set_xlabel(xlabel)
        ax.set_ylabel(metric)
        ax.grid(alpha=0.3)
    axes[0].legend(fontsize=7, loc="lower right")
    fig.suptitle(f"Collaborative inference ({summary['n_images']} images, {summary['channel']})")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_summary(summary: dict[str, Any], out: Path) -> tuple[Path, Path]:
    """``collab.json`` (everything) and ``collab.md`` (the table and the findings)."""
    metric = summary["metric"]
    js = out / "collab.json"
    js.write_text(json.dumps(summary, indent=1, default=float))
    lines = [f"# Collaborative inference: {summary['n_images']} images, {summary['channel']}", ""]
    for key in ("client_only", "server_only"):
        if key in summary:
            lines.append(f"- {key.replace('_', '-')} {metric}: {summary[key]:.4f}")
    t = summary.get("targets") or {}
    if t:
        lines.append(
            f"- cheapest point within 1 point of server-only: {t['point']}: {metric} "
            f"{t[metric]:.4f}, {t['bytes']:.0f} B = {t['share_of_server_bytes']:.1%} of "
            f"server-only bytes, {t['over_client_only'] * 100:+.1f} points over client-only"
            + ("" if t["within_1_point_of_server"] else " (none is within 1 point: best shown)")
        )
    lines += ["", "## Findings", ""]
    for f in summary["findings"]:
        a, b = f["question"].split(": ")[1].split(" vs ")
        gap = f"{f['difference'] * 100:+.1f} points"
        lines.append(
            f"- {f['question']}: {f[a]:.4f} vs {f[b]:.4f} ({gap}) -> {f['better']} ({f['how']})"
        )
    lines += ["", "## Points", "",
              f"| configuration | eta | confident | tokens sent | cost | bytes | {metric} |",
              "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in sorted(summary["rows"], key=lambda r: (r["label"], r["eta"] or 0)):
        eta = "" if r["gate"] in ("never", "always") else f"{r['eta']:g}"
        lines.append(
            f"| {r['label']} | {eta} | {r['confident']:.3f} | {r['tokens_per_offload']:.1f} | "
            f"{r['cost']:.4f} | {r['bytes']:.0f} | {r[metric]:.4f} |"
        )
    md = out / "collab.md"
    md.write_text("\n".join(lines) + "\n")
    return js, md


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m semcom.experiments.collab``: the grid sweep, report and summary."""
    from semcom.errors import SemcomError

    p = argparse.ArgumentParser(
        prog="python -m semcom.experiments.collab",
        description="Sweep collaborative inference over every gate x attention x rule "
        "and threshold; write the report, collab.md / collab.json and collab.png.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--edge", default="vit-synth", help="edge ViT: zoo name or checkpoint")
    p.add_argument("--server", default="server-synth", help="server: zoo name or checkpoint")
    p.add_argument("--extra", default="", help="more collab options, e.g. pixels=q4")
    p.add_argument("--gates", default=",".join(GATES), help="gates to sweep")
    p.add_argument("--attentions", default=",".join(ATTENTIONS), help="attention modes")
    p.add_argument("--rules", default=",".join(RULES), help="selection rules")
    p.add_argument(
        "--etas",
        default="",
        help="thresholds per gate, e.g. 'entropy=1/2/4;margin=0.2/0.5' (default: the "
        "scheme's defaults; entropies are in bits, up to log2 of the class count)",
    )
    p.add_argument("--dataset", default="synthetic", help="synthetic or tiny-imagenet")
    p.add_argument("--data-root", type=Path, default=None, help="dataset folder")
    p.add_argument("--split", default="test", help="split (synthetic: test; real: val)")
    p.add_argument("--n-images", type=int, default=512, help="images")
    p.add_argument("--channels", default="ideal", help="channel specs, comma-separated")
    p.add_argument("--seed", type=int, default=0, help="seed")
    p.add_argument("-o", "--out", type=Path, default=Path("collab-report"), help="report folder")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    args = p.parse_args(argv)
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
    try:
        etas: dict[str, list[float]] = {}
        for item in filter(None, (x.strip() for x in args.etas.split(";"))):
            gate, eq, values = item.partition("=")
            try:
                etas[gate.strip()] = [float(v) for v in values.split("/")]
            except ValueError:
                raise InputError(f"--etas: {item!r} is not gate=a/b/c") from None
            if not eq:
                raise InputError(f"--etas: {item!r} is not gate=a/b/c")
        specs = grid_specs(
            args.edge, args.server, gates=split(args.gates), attentions=split(args.attentions),
            rules=split(args.rules), etas=etas, extra=args.extra,
        )  # fmt: skip
        from semcom.experiments.demo import run_bench

        run_bench(
            specs, split(args.channels), None, args.dataset, args.data_root, args.split,
            args.n_images, 64, None, None, args.seed, args.out, progress=not args.no_progress,
        )  # fmt: skip
    except SemcomError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
