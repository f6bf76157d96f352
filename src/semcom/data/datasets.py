"""Torch datasets over the synthetic world: a map-style dataset and a fast batch iterator."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from semcom.data.hashing import seed_keys
from semcom.data.synthetic import SPLITS, SyntheticBatch, SyntheticWorld, split_seeds
from semcom.errors import InputError


def _positive_int(name: str, value: Any, allow_zero: bool = False) -> int:
    ok = isinstance(value, (int, np.integer)) and not isinstance(value, bool)
    if not ok or value < (0 if allow_zero else 1):
        raise InputError(f"{name} must be a {'non-negative' if allow_zero else 'positive'} int")
    return int(value)


class SyntheticDataset(Dataset):
    """Map-style dataset of the first ``length`` samples of a split (after ``offset``).

    Item ``i`` is the sample of seed ``SPLITS[split][0] + offset + i``, as a dict:
    ``image`` uint8 ``(3, S, S)``, ``label`` int64 scalar tensor, ``mask`` int64 ``(S, S)``,
    ``seed`` int, and ``caption`` str when ``captions=True``. ``__getitems__`` generates a
    whole list of items in one vectorised call, which ``DataLoader`` uses automatically.

    Args:
        split: "train", "val" or "test".
        length: number of samples.
        size: image side in pixels (ignored when ``world`` is given).
        max_distractors: small objects per image at most (ignored when ``world`` is given).
        captions: also return captions.
        offset: skip this many seeds at the start of the split.
        world: a configured :class:`SyntheticWorld` to draw from.
    """

    def __init__(
        self,
        split: str = "train",
        length: int = 10_000,
        size: int = 64,
        max_distractors: int = 2,
        *,
        captions: bool = False,
        offset: int = 0,
        world: SyntheticWorld | None = None,
    ) -> None:
        self.length = _positive_int("length", length, allow_zero=True)
        self.offset = _positive_int("offset", offset, allow_zero=True)
        self._seeds = split_seeds(split, self.length, self.offset)  # validates the split
        self.split = split
        self.world = world if world is not None else SyntheticWorld(size, max_distractors)
        self.captions = bool(captions)
        self.classes = list(self.world.class_names)

    def __len__(self) -> int:
        return self.length

    @property
    def seeds(self) -> Tensor:
        """The seeds of the items, int64 ``(length,)``."""
        return self._seeds

    def _seed_of(self, index: int) -> int:
        i = int(index)
        if i < 0:
            i += self.length
        if not 0 <= i < self.length:
            raise IndexError(f"index {index} out of range for {self.length} samples")
        return int(self._seeds[i])

    def batch(self, indices: Sequence[int]) -> SyntheticBatch:
        """Generate items ``indices`` at once as a :class:`SyntheticBatch`."""
        seeds = [self._seed_of(i) for i in indices]
        return self.world.generate(seeds, captions=self.captions)

    def __getitems__(self, indices: Sequence[int]) -> list[dict[str, Any]]:
        b = self.batch(indices)
        items = []
        for k in range(len(b)):
            item: dict[str, Any] = {
                "image": b.images[k],
                "label": b.labels[k],
                "mask": b.masks[k],
                "seed": int(b.seeds[k]) if b.seeds is not None else 0,
            }
            if b.captions is not None:
                item["caption"] = b.captions[k]
            items.append(item)
        return items

    def __getitem__(self, index: int) -> dict[str, Any]:
        return self.__getitems__([index])[0]


def iter_batches(
    split: str,
    batch_size: int,
    num_batches: int | None = None,
    *,
    length: int | None = None,
    shuffle_seed: int | None = None,
    offset: int = 0,
    drop_last: bool = False,
    world: SyntheticWorld | None = None,
    captions: bool = False,
) -> Iterator[SyntheticBatch]:
    """Yield whole :class:`SyntheticBatch` es of a split, generated a batch at a time.

    The pool is the ``length`` seeds of ``split`` after ``offset`` (default
    ``num_batches * batch_size``, i.e. fresh samples only). Without ``num_batches`` it runs
    one epoch over the pool; with it, it yields exactly ``num_batches`` batches, starting a
    new epoch whenever the pool runs out. With ``shuffle_seed`` every epoch visits the
    pool in its own seeded random order (``torch.Generator``; no global RNG); otherwise
    in order. ``drop_last`` skips each epoch's final short batch.
    """
    batch_size = _positive_int("batch_size", batch_size)
    if num_batches is None and length is None:
        raise InputError("iter_batches needs num_batches, length, or both")
    if num_batches is not None:
        num_batches = _positive_int("num_batches", num_batches, allow_zero=True)
    pool_size = length if length is not None else batch_size * (num_batches or 0)
    pool_size = _positive_int("length", pool_size, allow_zero=True)
    pool = split_seeds(split, pool_size, _positive_int("offset", offset, allow_zero=True))
    if world is None:
        world = SyntheticWorld()
    per_epoch = pool_size // batch_size if drop_last else -(-pool_size // batch_size)
    if per_epoch == 0:
        if num_batches:
            raise InputError(f"a pool of {pool_size} seeds gives no batch of {batch_size}")
        return
    total = per_epoch if num_batches is None else num_batches
    done, epoch = 0, 0
    while done < total:
        order = pool
        if shuffle_seed is not None:
            key = int(seed_keys(np.array([epoch]), int(shuffle_seed))[0])
            gen = torch.Generator().manual_seed(key)
            order = pool[torch.randperm(pool_size, generator=gen)]
        for b in range(per_epoch):
            if done >= total:
                return
            yield world.generate(order[b * batch_size : (b + 1) * batch_size], captions=captions)
            done += 1
        epoch += 1


__all__ = ["SPLITS", "SyntheticDataset", "iter_batches"]
