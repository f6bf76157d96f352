"""How good a caption is: exact match, corpus BLEU and the synthetic world's attributes.

* :func:`corpus_bleu` -- Papineni et al.'s BLEU over a corpus (one reference per
  caption): the geometric mean of the modified 1..``n``-gram precisions, pooled over
  the corpus, times the brevity penalty ``exp(1 - r / c)`` when the hypotheses are
  shorter in total (``c < r``); no smoothing (a corpus without any matching ``n``-gram
  scores 0);
* :func:`caption_attributes` -- what a synthetic-world caption states, read back from its
  words: the main object's ``size``, ``color`` and ``shape``, the number of objects and
  the background's ``texture`` and ``bg_color`` (``None`` where the words do not say).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence

__all__ = ["ATTRIBUTES", "caption_attributes", "corpus_bleu"]

#: The attributes :func:`caption_attributes` reads.
ATTRIBUTES: tuple[str, ...] = ("size", "color", "shape", "objects", "texture", "bg_color")


def _ngrams(words: Sequence[str], n: int) -> Counter[tuple[str, ...]]:
    return Counter(tuple(words[i : i + n]) for i in range(len(words) - n + 1))


def corpus_bleu(refs: Sequence[Sequence[str]], hyps: Sequence[Sequence[str]], n: int = 4) -> float:
    """Corpus BLEU-``n`` in ``[0, 1]`` of ``hyps`` against one reference each."""
    if len(refs) != len(hyps):
        raise ValueError(f"{len(refs)} references for {len(hyps)} hypotheses")
    match = [0] * n
    total = [0] * n
    r_len = c_len = 0
    for ref, hyp in zip(refs, hyps, strict=True):
        r_len += len(ref)
        c_len += len(hyp)
        for k in range(1, n + 1):
            h, r = _ngrams(hyp, k), _ngrams(ref, k)
            match[k - 1] += sum(min(c, r[g]) for g, c in h.items())
            total[k - 1] += max(len(hyp) - k + 1, 0)
    if c_len == 0 or any(m == 0 for m in match):
        return 0.0
    log_p = sum(math.log(m / t) for m, t in zip(match, total, strict=True)) / n
    bp = 1.0 if c_len >= r_len else math.exp(1 - r_len / c_len)
    return bp * math.exp(log_p)


def caption_attributes(words: Sequence[str]) -> dict[str, str | int | None]:
    """The attributes of a synthetic-world caption (module docstring)."""
    from semcom.data.synthetic import CLASS_NAMES, COLOR_NAMES, TEXTURE_NAMES

    w = list(words)
    out: dict[str, str | int | None] = dict.fromkeys(ATTRIBUTES)
    if len(w) >= 4 and w[0] == "a":
        out["size"] = w[1] if w[1] in ("large", "medium", "small") else None
        out["color"] = w[2] if w[2] in COLOR_NAMES else None
        out["shape"] = w[3] if w[3] in CLASS_NAMES else None
    shapes = [x for x in w if x in CLASS_NAMES]
    out["objects"] = len(shapes) if shapes else None
    if len(w) >= 3 and w[-1] == "background":
        out["texture"] = w[-3] if w[-3] in TEXTURE_NAMES else None
        out["bg_color"] = w[-2] if w[-2] in COLOR_NAMES else None
    return out
