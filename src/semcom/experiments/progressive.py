"""The progressive text experiment (Nam et al.): distance and semantic success against
words sent, per ordering, and the words and bytes it takes to reach a target.

For each test image of the synthetic world: Alice captions it (the captioner, or the
world's own caption with ``--caption truth``); for each ordering she sends *every* word
(no early stop, so each curve is complete) and, after each word, Bob's image is judged:

* ``distance`` -- Alice's distance to the original (the scheme's ``distance=``: LPIPS on
  the shared weights, or MSE without them);
* ``success`` -- the zoo ``shape-classifier`` names the main object's shape in Bob's
  image (the "semantic success");
* ``bytes`` -- the session's bytes so far (whole messages, headers included).

Then, for a ``target`` distance (a number, or ``auto:Q``: the ``Q`` quantile of the
distances that the *whole* caption reaches, over the test images -- a target the full
caption meets for a fraction ``Q`` of them, the role LPIPS 0.6 plays for Stable Diffusion
in the paper), each ordering's words and bytes at the first step within the target, and
the fraction of images that never get there. Outputs: ``progressive.json`` (one record
per image and ordering, and the summary), ``progressive.md`` (the table),
``distance_vs_words.png`` and ``strips.png`` (per example: the word sent at each step and
Bob's image after it, one row per ordering, like the paper's Fig. 2)::

    python -m semcom.experiments.progressive --generator G.safetensors \\
        --captioner C.safetensors --distance lpips-alex=DIR --n-images 64 -o runs/prog
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from semcom.errors import InputError, SemcomError
from semcom.text.orderings import ORDERINGS

__all__ = [
    "DEFAULT_CODECS",
    "bytes_for_success",
    "calibrate_target",
    "codec_curves",
    "main",
    "matched_codecs",
    "operating_points",
    "run_progressive",
    "summarise",
    "word_curves",
]

#: The classical codecs the text path is compared with (resolution-adaptive, at budgets
#: down to their floors: the byte counts recorded are the messages' real sizes).
DEFAULT_CODECS = tuple(
    f"{c}[scale=auto,rates=64/96/128/160/200/260/340/440/560/720/960]"
    for c in ("jpeg", "webp", "avif")
)


def word_curves(
    scheme: Any,
    ids: Sequence[int],
    image: torch.Tensor,
    order_name: str,
    judge: Any = None,
    label: int | None = None,
) -> dict[str, Any]:
    """One image's curves under one ordering: the order, and after each word the
    distance, the semantic success (with ``judge`` and ``label``) and the bytes.

    ``scheme``: a :class:`~semcom.schemes.text.TextScheme`; ``image`` uint8 ``(3, H, W)``.
    """
    n = len(ids)
    size = (int(image.shape[1]), int(image.shape[2]))
    ref = image[None].float() / 255.0
    calls = 0

    def images(sets: Sequence[Sequence[int]]) -> torch.Tensor:
        nonlocal calls
        calls += len(sets)
        batch = [[(p, int(ids[p])) for p in s] for s in sets]
        return scheme.generate((), scheme.seed, size, batch=batch)

    def dist(sets: Sequence[Sequence[int]]) -> list[float]:
        return scheme.distance(images(sets), ref.expand(len(sets), -1, -1, -1)).tolist()

    order, _ = scheme.ordering(ids, order_name, dist)
    search_calls = calls
    prefixes = [sorted(order[:k]) for k in range(1, n + 1)]
    pics = images(prefixes) if prefixes else images([[]])
    d = scheme.distance(pics, ref.expand(len(pics), -1, -1, -1)).tolist()
    success: list[bool] = []
    if judge is not None and label is not None:
        with torch.no_grad():
            out = judge(pics)
        logits = out["logits"] if isinstance(out, dict) else out
        success = (logits.argmax(-1) == int(label)).tolist()
    tx = scheme.transmit_caption(list(ids), size, budget=max(n, 1), order=order)
    sizes = [len(m) for m in tx.messages]
    cum = [sum(sizes[: k + 1]) for k in range(len(sizes))]
    code = scheme.word_code()
    words = [len(code.pack(int(ids[p]), int(p), n)) for p in order]
    payload = [sum(words[: k + 1]) for k in range(len(words))]
    return {"order": [int(p) for p in order], "distance": d, "success": success,
            "bytes": cum, "payload_bytes": payload, "search_calls": search_calls,
            "pics": pics}  # fmt: skip


def calibrate_target(records: Sequence[dict[str, Any]], q: float) -> float:
    """The ``q`` quantile of the whole caption's distance over the images (the last point
    of any ordering's curve: every word sent)."""
    full = sorted({r["image"]: r["distance"][-1] for r in records}.values())
    if not full:
        raise InputError("no curves to calibrate a target on")
    k = min(len(full) - 1, max(0, math.ceil(q * len(full)) - 1))
    return float(full[k])


def summarise(records: Sequence[dict[str, Any]], target: float) -> dict[str, Any]:
    """Per ordering: mean words and bytes at the target (over the images that reach it),
    the fraction that never does, the semantic success there and at the full caption,
    and the generator calls the ordering's search cost per image."""
    out: dict[str, Any] = {"target": target, "orderings": {}}
    for name in dict.fromkeys(r["ordering"] for r in records):
        rows = [r for r in records if r["ordering"] == name]
        words, nbytes, succ = [], [], []
        for r in rows:
            k = next((i for i, d in enumerate(r["distance"]) if d <= target), None)
            if k is None:
                continue
            words.append(k + 1)
            nbytes.append(r["bytes"][k])
            if r["success"]:
                succ.append(bool(r["success"][k]))
        n = len(rows)
        full_success = [bool(r["success"][-1]) for r in rows if r["success"]]
        first_success = [
            next((i + 1 for i, s in enumerate(r["success"]) if s), None)
            for r in rows
            if r["success"]
        ]
        reached_sem = [w for w in first_success if w is not None]
        out["orderings"][name] = {
            "images": n,
            "mean_words_at_target": sum(words) / len(words) if words else None,
            "mean_bytes_at_target": sum(nbytes) / len(nbytes) if nbytes else None,
            "never_reached": (n - len(words)) / max(n, 1),
            "success_at_target": sum(succ) / len(succ) if succ else None,
            "success_full_caption": sum(full_success) / len(full_success) if full_success else None,
            "mean_words_to_success": sum(reached_sem) / len(reached_sem) if reached_sem else None,
            "never_success": (len(first_success) - len(reached_sem)) / max(len(first_success), 1),
            "search_generator_calls": sum(r["search_calls"] for r in rows) / max(n, 1),
            "mean_caption_words": sum(len(r["order"]) for r in rows) / max(n, 1),
        }
    return out


def operating_points(records: Sequence[dict[str, Any]], target: float) -> dict[str, Any]:
    """Per ordering, the scheme as it runs: Alice stops at the first word whose
    simulated distance is within ``target`` or, never getting there, after the whole
    caption. Mean bytes and words sent, and the semantic success of Bob's last image,
    over *all* images."""
    out: dict[str, Any] = {}
    for name in dict.fromkeys(r["ordering"] for r in records):
        rows = [r for r in records if r["ordering"] == name]
        stops = []
        for r in rows:
            k = next((i for i, d in enumerate(r["distance"]) if d <= target), None)
            stops.append((r, len(r["distance"]) - 1 if k is None else k))
        judged = [(r, k) for r, k in stops if r["success"]]
        out[name] = {
            "images": len(rows),
            "mean_words": sum(k + 1 for _, k in stops) / max(len(stops), 1),
            "mean_bytes": sum(r["bytes"][k] for r, k in stops) / max(len(stops), 1),
            "mean_payload_bytes": sum(r.get("payload_bytes", r["bytes"])[k] for r, k in stops)
            / max(len(stops), 1),
            "success": (sum(bool(r["success"][k]) for r, k in judged) / len(judged))
            if judged
            else None,
        }
    return out


def codec_curves(
    specs: Sequence[str],
    images: torch.Tensor,
    labels: torch.Tensor,
    judge: Any,
    progress: bool = False,
) -> dict[str, list[dict[str, float]]]:
    """Semantic success against bytes of classical codecs on the same images: per spec
    (``"webp[scale=auto,rates=96/160]"``), one point per rate with the messages' real
    mean size (a budget under the codec's floor yields its smallest message, counted as
    it is) and how often ``judge`` names the shape in the decoded images.

    ``images``: uint8 ``(N, 3, H, W)``; ``labels``: int64 ``(N,)``.
    """
    from tqdm import tqdm

    from semcom.experiments.sweep import transmit_all
    from semcom.schemes import create_scheme

    out: dict[str, list[dict[str, float]]] = {}
    for spec in specs:
        scheme = create_scheme(spec)
        points = []
        for rate in tqdm(scheme.default_rates, desc=scheme.label, disable=not progress):
            sent = [tx.messages for tx in transmit_all(scheme, images, rate)]
            decoded = torch.stack([scheme.decompress(m[-1]).x_hat for m in sent])
            with torch.no_grad():
                logits = judge(decoded.float() / 255.0)
            logits = logits["logits"] if isinstance(logits, dict) else logits
            hits = (logits.argmax(-1) == labels).double().mean()
            nbytes = sum(len(b) for m in sent for b in m) / len(sent)
            points.append({"rate": float(rate), "mean_bytes": nbytes, "success": float(hits)})
        out[scheme.label] = sorted(points, key=lambda p: p["mean_bytes"])
    return out


def bytes_for_success(curve: Sequence[dict[str, float]], success: float) -> float | None:
    """The fewest mean bytes at which a codec's curve (points by bytes) reaches
    ``success``: linear between the two points around the first crossing; the first
    point's bytes when it already does; None when no point does (more bytes needed than
    were tried)."""
    pts = sorted(curve, key=lambda p: p["mean_bytes"])
    for i, p in enumerate(pts):
        if p["success"] >= success:
            if i == 0:
                return p["mean_bytes"]
            a = pts[i - 1]
            t = (success - a["success"]) / (p["success"] - a["success"])
            return a["mean_bytes"] + t * (p["mean_bytes"] - a["mean_bytes"])
    return None


def matched_codecs(
    points: dict[str, Any], curves: dict[str, list[dict[str, float]]]
) -> dict[str, Any]:
    """Per ordering and codec: the codec's bytes at the ordering's semantic success, and
    the factor (codec bytes / text bytes; None when the codec never reaches it)."""
    out: dict[str, Any] = {}
    for name, op in points.items():
        row: dict[str, Any] = {}
        for codec, curve in curves.items():
            top = max(curve, key=lambda p: p["mean_bytes"]) if curve else None
            need = None if op["success"] is None else bytes_for_success(curve, op["success"])
            row[codec] = {
                "bytes": need,
                "factor": None if need is None else need / max(op["mean_bytes"], 1e-9),
                "max_tried": None
                if top is None
                else {"bytes": top["mean_bytes"], "success": top["success"]},
            }
        out[name] = row
    return out


def _table(summary: dict[str, Any]) -> str:
    def f(v: Any, fmt: str) -> str:
        return "never" if v is None else format(v, fmt)

    lines = [
        f"Target distance: {summary['target']:.4f}",
        "",
        "| ordering | words at target | bytes at target | never reached | semantic success at "
        "target | words to semantic success | search generator calls / image |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, s in summary["orderings"].items():
        lines.append(
            f"| {name} | {f(s['mean_words_at_target'], '.2f')} | "
            f"{f(s['mean_bytes_at_target'], '.1f')} | {s['never_reached']:.1%} | "
            f"{f(s['success_at_target'], '.3f')} | {f(s['mean_words_to_success'], '.2f')} | "
            f"{s['search_generator_calls']:.1f} |"
        )
    ops, matched = summary.get("operating_points"), summary.get("codecs_matched")
    if ops:
        codecs = sorted({c for row in (matched or {}).values() for c in row})
        lines += [
            "",
            "Stopping at the target (or after the whole caption), over all images: bytes "
            "are whole messages (one container per word), 'of which words' the coded words "
            "and positions alone; each codec's bytes (whole messages) at the same semantic "
            "success, and the factor (codec / text):",
            "",
            "| ordering | words sent | bytes | of which words | semantic success | "
            + " | ".join(f"{c} bytes (factor)" for c in codecs)
            + " |",
            "|---|---|---|---|---|" + "---|" * len(codecs),
        ]
        for name, op in ops.items():
            cells = []
            for c in codecs:
                m = (matched or {}).get(name, {}).get(c)
                if m is None or m["bytes"] is None:
                    top = None if m is None else m["max_tried"]
                    cells.append("not reached" + (f" (<= {top['bytes']:.0f} B)" if top else ""))
                else:
                    cells.append(f"{m['bytes']:.0f} ({m['factor']:.1f}x)")
            lines.append(
                f"| {name} | {op['mean_words']:.2f} | {op['mean_bytes']:.1f} | "
                f"{op['mean_payload_bytes']:.1f} | "
                f"{f(op['success'], '.3f')} | " + " | ".join(cells) + " |"
            )
        if summary.get("codec_curves"):
            lines += ["", "Codec curves (mean bytes: semantic success):", ""]
            for c, curve in summary["codec_curves"].items():
                pts = ", ".join(f"{p['mean_bytes']:.0f}: {p['success']:.3f}" for p in curve)
                lines.append(f"- {c}: {pts}")
    return "\n".join(lines) + "\n"


def _plots(
    records: Sequence[dict[str, Any]], target: float, out: Path, summary: dict[str, Any]
) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    for name in dict.fromkeys(r["ordering"] for r in records):
        rows = [r["distance"] for r in records if r["ordering"] == name]
        longest = max(len(c) for c in rows)
        mean = [sum(c[min(k, len(c) - 1)] for c in rows) / len(rows) for k in range(longest)]
        ax.plot(range(1, longest + 1), mean, label=name)
    ax.axhline(target, color="gray", linestyle="--", linewidth=1, label="target")
    ax.set_xlabel("words sent")
    ax.set_ylabel("distance of Bob's image to the original")
    ax.legend(fontsize=8)
    fig.tight_layout()
    curve = out / "distance_vs_words.png"
    fig.savefig(curve, dpi=120)
    plt.close(fig)
    paths = [curve]
    ops, curves = summary.get("operating_points", {}), summary.get("codec_curves", {})
    if curves and any(op["success"] is not None for op in ops.values()):
        fig, ax = plt.subplots(figsize=(6, 4))
        for codec, pts in curves.items():
            ax.plot([p["mean_bytes"] for p in pts], [p["success"] for p in pts], marker=".",
                    label=codec.split("[")[0])  # fmt: skip
        for name, op in ops.items():
            if op["success"] is not None:
                ax.scatter([op["mean_bytes"]], [op["success"]], marker="*", s=80,
                           label=f"text: {name}")  # fmt: skip
        ax.set_xscale("log")
        ax.set_xlabel("mean bytes per image (whole messages)")
        ax.set_ylabel("semantic success (shape recognised)")
        ax.legend(fontsize=7)
        fig.tight_layout()
        paths.append(out / "success_vs_bytes.png")
        fig.savefig(paths[-1], dpi=120)
        plt.close(fig)
    return paths


def _strips(examples: Sequence[dict[str, Any]], vocab: Any, out: Path, steps: int = 8) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = len(examples)
    fig, axes = plt.subplots(
        rows, steps + 1, figsize=(1.3 * (steps + 1), 1.5 * rows), squeeze=False
    )
    for r, ex in enumerate(examples):
        axes[r][0].imshow(ex["image"].permute(1, 2, 0).numpy())
        axes[r][0].set_title(ex["ordering"], fontsize=6)
        for k in range(steps):
            a = axes[r][k + 1]
            if k < len(ex["order"]):
                a.imshow(ex["pics"][k].permute(1, 2, 0).clamp(0, 1).numpy())
                word = vocab.word(ex["ids"][ex["order"][k]])
                a.set_title(f"+{word}\n{ex['distance'][k]:.3f}", fontsize=6)
        for a in axes[r]:
            a.axis("off")
    fig.tight_layout()
    path = out / "strips.png"
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run_progressive(
    scheme: Any,
    *,
    n_images: int = 64,
    orders: Sequence[str] = ORDERINGS,
    caption: str = "model",
    target: str = "auto:0.75",
    split: str = "test",
    size: int = 64,
    judge: Any = "shape-classifier",
    out: Path = Path("progressive"),
    examples: int = 2,
    codecs: Sequence[str] = DEFAULT_CODECS,
    progress: bool = True,
) -> dict[str, Any]:
    """The whole experiment (module docstring); returns the summary. ``codecs``: classical
    codec specs compared at matched semantic success (needs ``judge``; empty: none)."""
    from semcom.data.convert import to_uint8
    from semcom.train.patch import load_frozen
    from semcom.train.recipes.text_diffusion import caption_ids
    from semcom.train.sources import eval_batches

    if caption not in ("model", "truth"):
        raise InputError(f"--caption must be model or truth, got {caption!r}")
    bad = [o for o in orders if o not in ORDERINGS]
    if bad:
        raise InputError(f"unknown ordering(s) {bad}; expected some of {', '.join(ORDERINGS)}")
    batches = list(eval_batches(split, n_images, 256, size))
    images_u8 = torch.cat([to_uint8(b.x) for b in batches])
    labels = torch.cat([b.y for b in batches])
    seeds = torch.cat([b.ids for b in batches])
    clf = None if judge is None else load_frozen(judge)
    vocab = scheme.vocabulary()
    records: list[dict[str, Any]] = []
    kept: list[dict[str, Any]] = []
    from tqdm import tqdm

    for i in tqdm(range(len(images_u8)), desc="images", disable=not progress):
        image = images_u8[i]
        if caption == "truth":
            row = caption_ids(seeds[i : i + 1], size)[0]
            ids = [int(t) for t in row if t != 0]
        else:
            ids = scheme.caption_of(image)
        label = int(labels[i])
        for name in orders:
            c = word_curves(scheme, ids, image, name, clf, label)
            pics = c.pop("pics")
            rec = {"image": i, "ordering": name, "ids": ids, **c,
                   "caption": " ".join(vocab.decode(ids))}  # fmt: skip
            records.append(rec)
            if i < examples:
                kept.append({**rec, "pics": pics, "image": image.float() / 255})
    if target.startswith("auto:"):
        try:
            q = float(target.split(":", 1)[1])
        except ValueError:
            raise InputError(
                f"--target auto:Q needs a number Q in (0, 1], got {target!r}"
            ) from None
        if not 0 < q <= 1:
            raise InputError(f"--target auto:Q needs Q in (0, 1], got {q}")
        value = calibrate_target(records, q)
    else:
        try:
            value = float(target)
        except ValueError:
            raise InputError(f"--target must be a distance or auto:Q, got {target!r}") from None
    summary = summarise(records, value)
    summary["operating_points"] = operating_points(records, value)
    if codecs and clf is not None:
        curves = codec_curves(codecs, images_u8, labels, clf, progress)
        summary["codec_curves"] = curves
        summary["codecs_matched"] = matched_codecs(summary["operating_points"], curves)
    summary.update(target_rule=target, caption=caption, n_images=len(images_u8))
    summary.update(distance=scheme.distance_spec, steps=scheme.steps, guidance=scheme.guidance)
    out.mkdir(parents=True, exist_ok=True)
    (out / "progressive.json").write_text(json.dumps({"summary": summary, "records": records}))
    (out / "progressive.md").write_text(_table(summary))
    _plots(records, value, out, summary)
    if kept:
        _strips(kept, vocab, out)
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; exit 2 with a one-line error on bad input."""
    p = argparse.ArgumentParser(
        prog="python -m semcom.experiments.progressive",
        description="Distance and semantic success against words sent, per ordering.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--generator",
        default="text-diffusion-synth",
        help="Bob's generator (zoo name or checkpoint)",
    )
    p.add_argument(
        "--captioner", default="captioner-synth", help="Alice's captioner (zoo name or checkpoint)"
    )
    p.add_argument(
        "--caption",
        default="model",
        choices=["model", "truth"],
        help="Alice's words: the captioner's, or the world's own caption",
    )
    p.add_argument("--distance", default="mse", help="lpips-alex=DIR, lpips-vgg=DIR or mse")
    p.add_argument("--orders", default=",".join(ORDERINGS), help="comma-separated orderings")
    p.add_argument(
        "--target",
        default="auto:0.75",
        help="a distance, or auto:Q (the Q quantile of the whole caption's distances)",
    )
    p.add_argument("--n-images", type=int, default=64, help="test images")
    p.add_argument("--steps", type=int, default=10, help="DDIM steps per generation")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance weight")
    p.add_argument("--examples", type=int, default=2, help="images shown in strips.png")
    p.add_argument(
        "--codecs",
        default=",".join(DEFAULT_CODECS),
        help="classical codec specs compared at matched semantic success ('none': skip)",
    )
    p.add_argument("-o", "--out", type=Path, default=Path("progressive"), help="output folder")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    a = p.parse_args(argv)
    try:
        if a.threads:
            torch.set_num_threads(a.threads)
        from semcom.schemes import create_scheme
        from semcom.schemes.base import split_scheme_list

        codecs = [] if a.codecs.strip() == "none" else split_scheme_list(a.codecs)
        for spec in codecs:
            create_scheme(spec)  # a bad spec fails now, not after the curves
        scheme = create_scheme("text", model=a.generator, captioner=a.captioner,
                               distance=a.distance, steps=a.steps, guidance=a.guidance)  # fmt: skip
        summary = run_progressive(
            scheme, n_images=a.n_images, orders=[o for o in a.orders.split(",") if o],
            caption=a.caption, target=a.target, out=a.out, examples=a.examples,
            codecs=codecs, progress=not a.no_progress,
        )  # fmt: skip
    except SemcomError as exc:
        from semcom.errors import one_line

        sys.stderr.write(f"semcom: error: {one_line(exc)}\n")
        return 2
    print(_table(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
