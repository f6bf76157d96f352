"""Where batches come from: the infinite synthetic world or a torch Dataset.

Both training sources are *stateless*: the global batch of step ``s`` is a pure function
of ``(seed, s)``, so a resumed run sees exactly the data an uninterrupted one would, and
DDP ranks shard the same global batch (rank ``r`` of ``W`` takes items ``r::W``).
:func:`eval_batches` is what every evaluation reads: a split's first images, in order.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, NamedTuple

import torch
from torch import Tensor

from semcom.errors import InputError

__all__ = [
    "DATASETS",
    "CroppedSource",
    "DatasetSource",
    "EvalBatch",
    "SyntheticSource",
    "collate_items",
    "eval_batches",
    "load_data_split",
    "parse_image_size",
]

#: datasets the training recipes read (``--dataset``)
DATASETS = ("synthetic", "tiny-imagenet", "camvid")

_SEED_STRIDE = 10_000_019


class SyntheticSource:
    """Batches from ``SyntheticWorld(size=image_size)``'s train split.

    Step ``s``'s global batch is seeds ``lo + off + s*B + [0, B)`` where
    ``off = seed * 10_000_019 mod (span / 2)`` (wrapped inside the split).
    """

    def __init__(
        self, task: str, seed: int = 0, image_size: int = 64, split: str = "train"
    ) -> None:
        from semcom.data import SPLITS, SyntheticWorld

        self.task = task
        self.world = SyntheticWorld(size=image_size)
        lo, hi = SPLITS[split]
        self.lo, self.span = int(lo), int(hi) - int(lo)
        self.offset = (int(seed) * _SEED_STRIDE) % (self.span // 2)

    def global_seeds(self, step: int, batch_size: int) -> Tensor:
        """int64 ``(B,)`` world seeds of step ``step``'s global batch."""
        start = self.offset + step * batch_size
        return self.lo + (start + torch.arange(batch_size, dtype=torch.int64)) % self.span

    def batch(
        self, step: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """This rank's shard: images float32 ``(B/W, 3, H, W)``, targets int64 ``(B/W,)``
        (classify) or ``(B/W, H, W)`` (segment), and the masks int64 ``(B/W, H, W)``."""
        from semcom.data import to_float

        seeds = self.global_seeds(step, batch_size)[rank::world]
        b = self.world.generate(seeds)
        return to_float(b.images), (b.labels if self.task == "classify" else b.masks), b.masks


def _to_image(x: Any) -> Tensor:
    if not isinstance(x, Tensor):
        try:
            import numpy as np

            arr = np.asarray(x)
            if arr.ndim == 3 and arr.shape[-1] in (1, 3) and arr.shape[0] not in (1, 3):
                arr = arr.transpose(2, 0, 1)  # HWC (PIL / numpy) -> CHW
            x = torch.from_numpy(np.ascontiguousarray(arr))
        except Exception as exc:
            raise InputError(f"dataset image of type {type(x).__name__} is not array-like") from exc
    if x.ndim != 3 or x.shape[0] not in (1, 3):
        raise InputError(f"dataset images must be (3, H, W), got {tuple(x.shape)}")
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    if x.dtype == torch.uint8:
        return x.float() / 255.0
    if not x.is_floating_point():
        raise InputError(f"dataset images must be uint8 or float, got {x.dtype}")
    return x.float()


def _to_target(y: Any) -> Tensor:
    return torch.as_tensor(y).long() if not isinstance(y, Tensor) else y.long()


def collate_items(items: list[Any]) -> tuple[Tensor, Tensor]:
    """Stack dataset items into ``(images float32 (N, 3, H, W), targets int64)``.

    An item is ``(image, target)`` or a dict with ``"image"`` and ``"label"``/``"mask"``;
    images are ``uint8``/float ``(3, H, W)`` tensors (or HWC arrays / PIL images).
    """
    xs, ys = [], []
    for it in items:
        if isinstance(it, dict):
            img = it.get("image")
            tgt = it.get("mask", it.get("label"))
        elif isinstance(it, (tuple, list)) and len(it) >= 2:
            img, tgt = it[0], it[1]
        else:
            raise InputError("dataset items must be (image, target) or dicts with image/label|mask")
        if img is None or tgt is None:
            raise InputError("dataset item lacks an image or a label/mask")
        xs.append(_to_image(img))
        ys.append(_to_target(tgt))
    try:
        return torch.stack(xs), torch.stack(ys)
    except RuntimeError as exc:
        raise InputError(f"dataset items of different sizes cannot be batched: {exc}") from None


class DatasetSource:
    """Batches drawn from a map-style ``torch.utils.data.Dataset`` without replacement.

    Epoch ``e`` visits the dataset in order ``randperm(len, generator(seed, e))``; the
    global batch of step ``s`` is positions ``[s*B, (s+1)*B)`` of that endless stream.
    """

    def __init__(self, data: Any, seed: int = 0) -> None:
        try:
            self.length = len(data)
        except TypeError:
            raise InputError("data= must be a map-style dataset with __len__") from None
        if self.length < 1:
            raise InputError("data= is an empty dataset")
        self.data = data
        self.seed = int(seed)
        self._perm: tuple[int, Tensor] | None = None

    def _order(self, epoch: int) -> Tensor:
        if self._perm is None or self._perm[0] != epoch:
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch)
            self._perm = (epoch, torch.randperm(self.length, generator=g))
        return self._perm[1]

    def global_indices(self, step: int, batch_size: int) -> list[int]:
        """Dataset indices of step ``step``'s global batch."""
        out = []
        for p in range(step * batch_size, (step + 1) * batch_size):
            out.append(int(self._order(p // self.length)[p % self.length]))
        return out

    def batch(
        self, step: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> tuple[Tensor, Tensor, None]:
        """This rank's shard of the global batch (see ``collate_items``); no masks."""
        idx = self.global_indices(step, batch_size)[rank::world]
        x, y = collate_items([self.data[i] for i in idx])
        return x, y, None


class CroppedSource:
    """Random ``crop`` x ``crop`` windows of another source's batches, each mirrored left
    to right with probability 1/2 when ``flip`` (the codec recipes on real photos: a
    fully convolutional codec trains on crops and codes whole images).

    Stateless like the source it wraps: the windows of step ``s`` are drawn from a
    generator seeded with ``(seed, s)``, one per item of the *global* batch, so every
    rank and every resumed run cuts the same ones. Targets of the image's size (masks)
    are cut with it; labels pass through.
    """

    def __init__(self, source: Any, crop: int, seed: int = 0, flip: bool = True) -> None:
        if isinstance(crop, bool) or not isinstance(crop, int) or crop < 8 or crop % 8:
            raise InputError(f"crop must be a multiple of 8 (>= 8), got {crop!r}")
        self.source, self.crop, self.seed, self.flip = source, int(crop), int(seed), bool(flip)

    def batch(
        self, step: int, batch_size: int, rank: int = 0, world: int = 1
    ) -> tuple[Tensor, Tensor, Tensor | None]:
        """This rank's shard: images float32 ``(B/W, 3, crop, crop)`` and the wrapped
        source's targets (cut alike when they are ``(B/W, H, W)``)."""
        x, y, m = self.source.batch(step, batch_size, rank, world)
        h, w = x.shape[-2:]
        c = self.crop
        if c > h or c > w:
            raise InputError(f"crop {c} is larger than the images ({h} x {w})")
        g = torch.Generator().manual_seed(self.seed * 1_000_003 + int(step))
        tops = torch.randint(0, h - c + 1, (batch_size,), generator=g)[rank::world]
        lefts = torch.randint(0, w - c + 1, (batch_size,), generator=g)[rank::world]
        mirror = (torch.rand(batch_size, generator=g) < 0.5)[rank::world] & self.flip

        def cut(t: Tensor | None) -> Tensor | None:
            if t is None or t.shape[-2:] != (h, w):
                return t
            windows = zip(tops.tolist(), lefts.tolist(), strict=True)
            out = torch.stack([t[i, ..., a : a + c, b : b + c] for i, (a, b) in enumerate(windows)])
            return torch.where(mirror.view(-1, *[1] * (out.ndim - 1)), out.flip(-1), out)

        return cut(x), cut(y), cut(m)  # type: ignore[return-value]


class EvalBatch(NamedTuple):
    """Images of an evaluation: ``x`` float32 ``(B, 3, H, W)``; ``y`` int64 targets (the
    labels, or a dataset's targets); ``masks`` the synthetic world's int64 ``(B, H, W)``
    (``None`` for datasets); ``ids`` int64 ``(B,)`` name the images (world seeds, or
    dataset indices): they seed per-image random choices, so a score never depends on
    the batch size."""

    x: Tensor
    y: Tensor
    masks: Tensor | None
    ids: Tensor


def eval_batches(
    split: str, n: int | None, batch_size: int, image_size: int = 64, data: Any = None
) -> Iterator[EvalBatch]:
    """The images of an evaluation in batches: ``n`` images of the synthetic world's
    ``split`` (``SyntheticWorld(size=image_size)``), or the first ``n`` items (all when
    ``None``) of the map-style dataset ``data``."""
    if data is None:
        from semcom.data import SyntheticWorld, to_float

        world = SyntheticWorld(size=image_size)
        seeds = torch.as_tensor(world.split_seeds(split, n), dtype=torch.int64)
        for i in range(0, len(seeds), batch_size):
            s = seeds[i : i + batch_size]
            b = world.generate(s)
            yield EvalBatch(to_float(b.images), b.labels, b.masks, s)
        return
    total = len(data) if n is None else min(n, len(data))
    for i in range(0, total, batch_size):
        idx = list(range(i, min(total, i + batch_size)))
        x, y = collate_items([data[j] for j in idx])
        yield EvalBatch(x, y, None, torch.tensor(idx, dtype=torch.int64))


def parse_image_size(text: str | int | tuple[int, int]) -> int | tuple[int, int]:
    """``"64"`` -> 64, ``"240x320"`` -> ``(240, 320)`` (height x width); each side a
    multiple of 8 in 8..4096 (InputError otherwise)."""
    if isinstance(text, (int, tuple)):
        sides = (text, text) if isinstance(text, int) else text
        value: int | tuple[int, int] = text
    else:
        parts = str(text).lower().replace("*", "x").split("x")
        try:
            nums = tuple(int(p) for p in parts)
        except ValueError:
            raise InputError(f"image size must be N or HxW, got {text!r}") from None
        if len(nums) not in (1, 2):
            raise InputError(f"image size must be N or HxW, got {text!r}")
        sides = nums if len(nums) == 2 else (nums[0], nums[0])
        value = nums[0] if len(nums) == 1 else (nums[0], nums[1])
    if not all(isinstance(v, int) and 8 <= v <= 4096 and v % 8 == 0 for v in sides):
        raise InputError(f"image size sides must be multiples of 8 in 8..4096, got {text!r}")
    return value


def load_data_split(dataset: str, data_root: Any, split: str, size: int | tuple[int, int]) -> Any:
    """A real dataset's split by name (``None`` for "synthetic", generated on the fly),
    its images resized to ``size`` (a side, or ``(height, width)``)."""
    if dataset == "synthetic":
        if not isinstance(size, int):
            raise InputError(f"the synthetic world's images are square; got size {size!r}")
        return None
    if dataset not in DATASETS:
        raise InputError(f"unknown dataset {dataset!r}; expected one of {', '.join(DATASETS)}")
    if data_root is None:
        raise InputError(f"dataset {dataset!r} needs data_root (--data-root)")
    try:
        from semcom.data import load_dataset
    except ImportError as exc:
        raise InputError(f"semcom.data.load_dataset is unavailable: {exc}") from None
    return load_dataset(dataset, root=data_root, split=split, size=size)
