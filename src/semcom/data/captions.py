"""Real-data loaders for captioned images: Flickr8k-style CSV and COCO captions JSON.

Items are ``(image uint8 (3, H, W), captions list[str])``. Use :func:`collate_captions`
as a ``DataLoader`` ``collate_fn`` (the default collate cannot batch caption lists).
Image files are read when an item is asked for; a missing or unreadable one raises
:class:`~semcom.errors.InputError` then. A missing or malformed root, caption file or
annotation file raises InputError at construction.
"""

from __future__ import annotations

import csv
import io
import json
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from semcom.data.folders import _directory, _ImageFiles
from semcom.data.images import Size, parse_size
from semcom.errors import InputError

CAPTION_SPLITS = ("all", "train", "val", "test")


def _hash_split(name: str) -> str:
    """Stable split of an image name: 10% test, 10% val, 80% train (CRC32 of the name)."""
    bucket = zlib.crc32(name.encode("utf-8")) % 10
    return "test" if bucket == 0 else ("val" if bucket == 1 else "train")


def _first_existing(candidates: Sequence[Path], what: str, is_dir: bool) -> Path:
    for c in candidates:
        if c.is_dir() if is_dir else c.is_file():
            return c
    names = ", ".join(str(c) for c in candidates)
    raise InputError(f"{what}: none of {names} exists")


def collate_captions(batch: Sequence[tuple[Tensor, list[str]]]) -> tuple[Tensor, list[list[str]]]:
    """Stack ``(image, captions)`` items: uint8 ``(N, 3, H, W)`` and a list of caption lists."""
    if not batch:
        raise InputError("collate_captions: empty batch")
    shapes = {tuple(img.shape) for img, _ in batch}
    if len(shapes) != 1:
        raise InputError(f"collate_captions: images differ in shape {sorted(shapes)}; pass size=")
    return torch.stack([img for img, _ in batch]), [list(caps) for _, caps in batch]


def _chosen(explicit: str | Path | None, defaults: Sequence[Path], what: str, is_dir: bool) -> Path:
    """``explicit`` if given, else the first of ``defaults`` that exists."""
    return Path(explicit) if explicit is not None else _first_existing(defaults, what, is_dir)


def _image_folder(explicit: str | Path | None, defaults: Sequence[Path], what: str) -> Path:
    """The image folder: ``explicit`` or the first existing default; must be a directory."""
    folder = _chosen(explicit, defaults, what, True)
    if not folder.is_dir():
        raise InputError(f"{what}: image folder {folder} is not a directory")
    return folder


class _CaptionDataset(_ImageFiles):
    """Shared storage: ``samples`` is a list of ``(image path, captions)``."""

    samples: list[tuple[Path, list[str]]]

    def _target(self, target: list[str]) -> list[str]:
        return list(target)


class Flickr8kDataset(_CaptionDataset):
    """Flickr8k in the CSV layout: ``captions.txt`` (``image,caption`` header, one caption a
    row, several rows per image) next to an ``Images/`` folder.

    Args:
        root: folder holding the caption file and the image folder.
        split: "all", or "train"/"val"/"test": a stable 80/10/10 split by CRC32 of the
            image file name (Flickr8k's CSV release has no official split).
        size: resize images to this size.
        captions_file: caption CSV (default ``root/captions.txt`` or ``root/captions.csv``).
        images_dir: image folder (default ``root/Images``, ``root/images`` or ``root``).
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "all",
        size: Size = None,
        *,
        captions_file: str | Path | None = None,
        images_dir: str | Path | None = None,
    ) -> None:
        base = _directory(root, "flickr8k")
        if split not in CAPTION_SPLITS:
            raise InputError(f"flickr8k: split must be one of {CAPTION_SPLITS}, got {split!r}")
        self.size = parse_size(size)
        csv_path = _chosen(
            captions_file, [base / "captions.txt", base / "captions.csv"], "flickr8k", False
        )
        img_dir = _image_folder(images_dir, [base / "Images", base / "images", base], "flickr8k")
        grouped = self._parse(csv_path)
        self.samples = [
            (img_dir / name, caps)
            for name, caps in grouped.items()
            if split == "all" or _hash_split(name) == split
        ]
        if not self.samples:
            raise InputError(f"flickr8k: no images in split {split!r} of {csv_path}")
        self.split = split

    @staticmethod
    def _parse(path: Path) -> dict[str, list[str]]:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except (OSError, UnicodeDecodeError) as e:
            raise InputError(f"flickr8k: cannot read {path}: {e}") from None
        try:
            rows = list(csv.reader(io.StringIO(text)))
        except csv.Error as e:
            raise InputError(f"flickr8k: {path} is not valid CSV: {e}") from None
        if not rows or [c.strip().lower() for c in rows[0][:2]] != ["image", "caption"]:
            raise InputError(f"flickr8k: {path} must start with the header 'image,caption'")
        grouped: dict[str, list[str]] = {}
        for n, row in enumerate(rows[1:], start=2):
            if not row or not any(c.strip() for c in row):
                continue
            # an unquoted caption may contain commas: everything after the first field
            name, caption = row[0].strip(), ",".join(row[1:]).strip()
            if len(row) < 2 or not name or not caption:
                raise InputError(f"flickr8k: {path}:{n}: expected 'image,caption'")
            if Path(name).name != name:
                raise InputError(f"flickr8k: {path}:{n}: image name {name!r} is not a file name")
            grouped.setdefault(name, []).append(caption)
        return grouped


class CocoCaptionsDataset(_CaptionDataset):
    """COCO captions: an annotation JSON (``images``: id, file_name; ``annotations``:
    image_id, caption) and an image folder. Images without captions are left out.

    Args:
        root: COCO folder; defaults are ``root/annotations/captions_<split>2017.json`` and
            ``root/<split>2017/`` (then the 2014 names).
        split: "train" or "val" (used only to find the default files).
        size: resize images to this size.
        annotations_file: explicit annotation JSON.
        images_dir: explicit image folder.
    """

    def __init__(
        self,
        root: str | Path,
        split: str = "train",
        size: Size = None,
        *,
        annotations_file: str | Path | None = None,
        images_dir: str | Path | None = None,
    ) -> None:
        base = _directory(root, "coco-captions")
        self.size = parse_size(size)
        years = ("2017", "2014")
        ann = _chosen(
            annotations_file,
            [base / "annotations" / f"captions_{split}{y}.json" for y in years]
            + [base / f"captions_{split}{y}.json" for y in years],
            "coco-captions",
            False,
        )
        img_dir = _image_folder(
            images_dir, [base / f"{split}{y}" for y in years] + [base / "images"], "coco-captions"
        )
        self.samples = [(img_dir / name, caps) for name, caps in self._parse(ann)]
        if not self.samples:
            raise InputError(f"coco-captions: {ann} has no captioned images")
        self.split = split

    @staticmethod
    def _parse(path: Path) -> list[tuple[str, list[str]]]:
        try:
            with open(path, "rb") as f:
                data: Any = json.load(f)
        except (OSError, ValueError, RecursionError) as e:
            raise InputError(f"coco-captions: cannot parse {path}: {e}") from None
        if not isinstance(data, dict):
            raise InputError(f"coco-captions: {path}: top level must be an object")
        images, anns = data.get("images"), data.get("annotations")
        if not isinstance(images, list) or not isinstance(anns, list):
            raise InputError(f"coco-captions: {path}: needs 'images' and 'annotations' lists")
        names: dict[int, str] = {}
        for i, im in enumerate(images):
            ok = isinstance(im, dict) and isinstance(im.get("id"), int)
            name = im.get("file_name") if ok else None
            if not ok or not isinstance(name, str) or not name or Path(name).name != name:
                raise InputError(f"coco-captions: {path}: images[{i}] needs int id, file_name")
            names[im["id"]] = name
        caps: dict[int, list[str]] = {}
        for i, a in enumerate(anns):
            ok = isinstance(a, dict) and isinstance(a.get("image_id"), int)
            text = a.get("caption") if ok else None
            if not ok or not isinstance(text, str):
                raise InputError(f"coco-captions: {path}: annotations[{i}] needs image_id, caption")
            if a["image_id"] not in names:
                raise InputError(
                    f"coco-captions: {path}: annotations[{i}] refers to unknown image "
                    f"{a['image_id']}"
                )
            caps.setdefault(a["image_id"], []).append(text.strip())
        return [(names[i], caps[i]) for i in names if i in caps]
