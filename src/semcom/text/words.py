"""Words and their ids: the vocabulary of the progressive text scheme (Nam et al.).

A caption is a sequence of *words*: :func:`split_words` lower-cases it, drops
punctuation (commas, full stops) and splits on whitespace, so ``"a red circle, and"`` is
``["a", "red", "circle", "and"]``. A :class:`Vocabulary` maps words to ids and back;
a word it does not hold maps to ``<unk>`` (never an error), so any caption -- a real
one included -- can be encoded. The first ids are the special tokens:

=====  =========  ===================================================
id     token      meaning
=====  =========  ===================================================
0      ``<pad>``  padding of a batch of captions (never sent)
1      ``<unk>``  a word outside the vocabulary
2      ``<bos>``  start of a caption (the captioner's first input)
3      ``<eos>``  end of a caption (the captioner's last output)
=====  =========  ===================================================

:func:`synthetic_vocabulary` is the synthetic world's: every word its captions use
(:func:`semcom.data.SyntheticWorld.caption`), in a fixed order, so an id means the same
word in every checkpoint that records the vocabulary (``Vocabulary.words``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache

import torch

from semcom.errors import InputError

__all__ = [
    "BOS",
    "EOS",
    "PAD",
    "SPECIALS",
    "UNK",
    "Vocabulary",
    "split_words",
    "synthetic_vocabulary",
]

PAD, UNK, BOS, EOS = 0, 1, 2, 3
SPECIALS: tuple[str, ...] = ("<pad>", "<unk>", "<bos>", "<eos>")
#: Longest caption (in words) the text models take; longer ones are refused.
MAX_WORDS = 64
_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")


def split_words(caption: str) -> list[str]:
    """The words of ``caption``: lower case, punctuation dropped (``[]`` for empty text)."""
    if not isinstance(caption, str):
        raise InputError(f"a caption is a str, got {type(caption).__name__}")
    return _WORD.findall(caption.lower())


class Vocabulary:
    """Words <-> ids; the specials (:data:`SPECIALS`) come first.

    Args:
        words: the vocabulary's words (specials excluded), each as :func:`split_words`
            would give it, no duplicates.
    """

    def __init__(self, words: Iterable[str]) -> None:
        words = list(words)
        bad = [w for w in words if split_words(w) != [w] or w in SPECIALS]
        if bad:
            raise InputError(f"vocabulary words must be single lower-case words, got {bad[:3]}")
        if len(set(words)) != len(words):
            raise InputError("vocabulary words must be unique")
        self.words: tuple[str, ...] = tuple(words)
        self.tokens: tuple[str, ...] = SPECIALS + self.words
        self._ids = {w: i for i, w in enumerate(self.tokens)}

    def __len__(self) -> int:
        """Ids in use, the specials included."""
        return len(self.tokens)

    def __contains__(self, word: object) -> bool:
        return isinstance(word, str) and word in self._ids and word not in SPECIALS

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Vocabulary) and other.words == self.words

    def __hash__(self) -> int:
        return hash(self.words)

    def id(self, word: str) -> int:
        """The id of ``word`` (:data:`UNK` when it is not in the vocabulary)."""
        i = self._ids.get(word, UNK)
        return UNK if i < len(SPECIALS) else i

    def encode(self, words: Sequence[str] | str) -> list[int]:
        """Ids of ``words`` (a caption string is split first); unknown words -> UNK."""
        if isinstance(words, str):
            words = split_words(words)
        return [self.id(w) for w in words]

    def word(self, i: int) -> str:
        """The token of id ``i`` (InputError when out of range)."""
        if isinstance(i, bool) or not 0 <= int(i) < len(self.tokens):
            raise InputError(f"word id {i} is outside the vocabulary (0..{len(self) - 1})")
        return self.tokens[int(i)]

    def decode(self, ids: Iterable[int], *, stop: bool = True) -> list[str]:
        """Words of ``ids``: padding and ``<bos>`` skipped, up to ``<eos>`` when ``stop``."""
        out = []
        for i in ids:
            i = int(i)
            if i == EOS and stop:
                break
            if i in (PAD, BOS, EOS):
                continue
            out.append(self.word(i))
        return out

    def batch(
        self, captions: Sequence[Sequence[str] | str], *, bos: bool = False, eos: bool = False
    ) -> torch.Tensor:
        """int64 ``(N, T)`` ids of ``captions`` right-padded with :data:`PAD` (``T`` the
        longest, with ``<bos>`` / ``<eos>`` when asked); InputError past
        :data:`MAX_WORDS` words."""
        rows = []
        for c in captions:
            ids = self.encode(c)
            if len(ids) > MAX_WORDS:
                raise InputError(f"a caption of {len(ids)} words is longer than {MAX_WORDS}")
            rows.append(([BOS] if bos else []) + ids + ([EOS] if eos else []))
        t = max([len(r) for r in rows] + [1])
        out = torch.full((len(rows), t), PAD, dtype=torch.int64)
        for k, r in enumerate(rows):
            out[k, : len(r)] = torch.tensor(r, dtype=torch.int64)
        return out


@lru_cache(maxsize=1)
def synthetic_vocabulary() -> Vocabulary:
    """Every word of the synthetic world's captions, in a fixed order: function words,
    sizes, colours, shapes, position words, textures (built once per process)."""
    from semcom.data.synthetic import CLASS_NAMES, COLOR_NAMES, TEXTURE_NAMES

    function = ("a", "and", "on", "at", "in", "the", "background")
    sizes = ("large", "medium", "small")
    positions = ("top", "bottom", "left", "right", "center")
    return Vocabulary((*function, *sizes, *COLOR_NAMES, *CLASS_NAMES, *positions, *TEXTURE_NAMES))
