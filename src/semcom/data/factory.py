"""``load_dataset``: one entry point for every dataset by name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.data import Dataset

from semcom.data.captions import CocoCaptionsDataset, Flickr8kDataset
from semcom.data.datasets import SyntheticDataset
from semcom.data.folders import CamVidDataset, ImageFolderDataset, TinyImageNetDataset
from semcom.data.images import Size
from semcom.errors import InputError

DATASET_NAMES = ("synthetic", "imagefolder", "tiny-imagenet", "camvid", "flickr8k", "coco-captions")


def load_dataset(
    name: str,
    root: str | Path | None = None,
    split: str | None = None,
    size: Size = None,
    **kwargs: Any,
) -> Dataset:
    """Build a dataset by name (one of :data:`DATASET_NAMES`).

    Args:
        name: dataset name (case-insensitive; "_" and "-" are the same).
        root: data folder; required for every dataset but "synthetic".
        split: split name; default "train" ("all" for flickr8k). For "imagefolder",
            ``root/<split>`` is used when that folder exists (else ``root`` itself).
        size: image size (int or (height, width)); "synthetic" takes an int (default 64).
        kwargs: passed to the dataset class (e.g. ``length=`` for "synthetic").

    Returns a map-style torch Dataset; items are described by each class's docstring.
    """
    key = str(name).strip().lower().replace("_", "-")
    aliases = {
        "image-folder": "imagefolder",
        "tinyimagenet": "tiny-imagenet",
        "coco": "coco-captions",
    }
    key = aliases.get(key, key)
    if key not in DATASET_NAMES:
        raise InputError(f"unknown dataset {name!r}; expected one of {', '.join(DATASET_NAMES)}")
    if key == "synthetic":
        if size is not None and (not isinstance(size, int) or isinstance(size, bool)):
            raise InputError(f"synthetic: size must be an int, got {size!r}")
        return SyntheticDataset(split or "train", size=64 if size is None else size, **kwargs)
    if root is None:
        raise InputError(f"dataset {key!r} needs a root directory")
    try:
        if key == "imagefolder":
            base = Path(root).expanduser()
            if split is not None and (base / split).is_dir():
                base = base / split
            return ImageFolderDataset(base, size=size, **kwargs)
        if key == "tiny-imagenet":
            return TinyImageNetDataset(root, split or "train", size=size, **kwargs)
        if key == "camvid":
            return CamVidDataset(root, split or "train", size=size, **kwargs)
        if key == "flickr8k":
            return Flickr8kDataset(root, split or "all", size=size, **kwargs)
        return CocoCaptionsDataset(root, split or "train", size=size, **kwargs)
    except TypeError as e:  # unexpected keyword arguments
        raise InputError(f"dataset {key!r}: {e}") from None
