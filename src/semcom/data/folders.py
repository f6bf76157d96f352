"""Real-data loaders for classification and segmentation folder layouts.

* :class:`ImageFolderDataset`: ``root/<class>/**/<image>`` (class per sub-folder).
* :class:`TinyImageNetDataset`: Tiny-ImageNet-200 (``wnids.txt``, ``train/<wnid>/images``,
  ``val/images`` + ``val/val_annotations.txt``; names from ``words.txt`` when present).
* :class:`CamVidDataset`: CamVid in the SegNet layout (``train/``, ``trainannot/``, ...).

Every dataset is map-style and returns ``(image, target)``: image uint8 ``(3, H, W)``
(resized to ``size`` when given), target an int class index or an int64 ``(H, W)`` mask.
A missing or malformed root raises :class:`~semcom.errors.InputError` at construction.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor
from torch.utils.data import Dataset

from semcom.data.convert import IGNORE_INDEX
from semcom.data.images import Size, is_image_file, parse_size, read_image, read_label
from semcom.errors import InputError

CAMVID_CLASSES: tuple[str, ...] = (
    "sky",
    "building",
    "pole",
    "road",
    "pavement",
    "tree",
    "sign/symbol",
    "fence",
    "car",
    "pedestrian",
    "bicyclist",
)
"""CamVid (SegNet version) class names; mask value ``i`` is ``CAMVID_CLASSES[i]``."""

CAMVID_VOID = 11
"""CamVid's void label in the files; loaders map it to IGNORE_INDEX."""


def _directory(path: str | Path | None, what: str) -> Path:
    if path is None:
        raise InputError(f"{what}: a root directory is required")
    p = Path(path).expanduser()
    if not p.is_dir():
        raise InputError(f"{what}: {p} is not a directory")
    return p


def _images_in(folder: Path, recursive: bool = False) -> list[Path]:
    it = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(p for p in it if is_image_file(p))


def _read_lines(path: Path, what: str) -> list[str]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise InputError(f"{what}: missing {path}") from None
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{what}: cannot read {path}: {e}") from None
    return text.splitlines()


class _ImageFiles(Dataset):
    """Map-style dataset over ``samples``, ``(image path, target)`` pairs: an item is the
    image read (resized to ``size``) and :meth:`_target` of the target."""

    samples: list[tuple[Path, Any]]
    size: tuple[int, int] | None

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> tuple[Tensor, Any]:
        path, target = self.samples[index]
        return read_image(path, self.size), self._target(target)

    def _target(self, target: Any) -> Any:
        return target


class ImageFolderDataset(_ImageFiles):
    """Images in ``root/<class name>/...`` (any depth, any extension Pillow reads).

    Classes are the sub-folder names, sorted; items are ``(image uint8 (3, H, W), label int)``.
    """

    def __init__(self, root: str | Path, size: Size = None) -> None:
        self.root = _directory(root, "image folder")
        self.size = parse_size(size)
        dirs = sorted(p for p in self.root.iterdir() if p.is_dir() and not p.name.startswith("."))
        if not dirs:
            raise InputError(f"image folder: {self.root} has no class sub-folders")
        self.classes = [d.name for d in dirs]
        self.num_classes = len(self.classes)
        self.samples: list[tuple[Path, int]] = [
            (f, label) for label, d in enumerate(dirs) for f in _images_in(d, recursive=True)
        ]
        if not self.samples:
            raise InputError(f"image folder: no image files under {self.root}")


class TinyImageNetDataset(_ImageFiles):
    """Tiny-ImageNet-200, split "train" or "val"; items ``(image uint8 (3, H, W), label int)``.

    ``root`` is the folder holding ``wnids.txt`` (or its parent holding
    ``tiny-imagenet-200/``). Labels index ``wnids`` in ``wnids.txt`` order;
    ``class_names`` are the first synonyms from ``words.txt`` (the wnid when absent).
    """

    def __init__(self, root: str | Path, split: str = "train", size: Size = None) -> None:
        base = _directory(root, "tiny-imagenet")
        if not (base / "wnids.txt").is_file() and (base / "tiny-imagenet-200").is_dir():
            base = base / "tiny-imagenet-200"
        if split not in ("train", "val"):
            raise InputError(f"tiny-imagenet: split must be 'train' or 'val', got {split!r}")
        self.root, self.split, self.size = base, split, parse_size(size)
        wnids = [w.strip() for w in _read_lines(base / "wnids.txt", "tiny-imagenet") if w.strip()]
        if not wnids or len(set(wnids)) != len(wnids):
            raise InputError(f"tiny-imagenet: {base / 'wnids.txt'} is empty or has duplicates")
        self.wnids = wnids
        self.classes = wnids
        self.num_classes = len(wnids)
        index = {w: i for i, w in enumerate(wnids)}
        self.class_names = self._names(base / "words.txt", wnids)
        if split == "train":
            self.samples = self._train(base / "train", wnids)
        else:
            self.samples = self._val(base / "val", index)
        if not self.samples:
            raise InputError(f"tiny-imagenet: no {split} images under {base}")

    @staticmethod
    def _names(words: Path, wnids: list[str]) -> list[str]:
        if not words.is_file():
            return list(wnids)
        table: dict[str, str] = {}
        for line in _read_lines(words, "tiny-imagenet"):
            wnid, _, names = line.partition("\t")
            if names:
                table[wnid.strip()] = names.split(",")[0].strip()
        return [table.get(w, w) for w in wnids]

    @staticmethod
    def _train(folder: Path, wnids: list[str]) -> list[tuple[Path, int]]:
        _directory(folder, "tiny-imagenet train")
        samples = []
        for label, w in enumerate(wnids):
            d = folder / w / "images"
            if not d.is_dir():
                raise InputError(f"tiny-imagenet: missing folder {d}")
            samples.extend((f, label) for f in _images_in(d))
        return samples

    @staticmethod
    def _val(folder: Path, index: dict[str, int]) -> list[tuple[Path, int]]:
        images = _directory(folder / "images", "tiny-imagenet val")
        ann = folder / "val_annotations.txt"
        samples = []
        for n, line in enumerate(_read_lines(ann, "tiny-imagenet"), start=1):
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) < 2 or not fields[0].strip():
                raise InputError(f"tiny-imagenet: {ann}:{n}: expected 'file<TAB>wnid...'")
            name, wnid = fields[0].strip(), fields[1].strip()
            if wnid not in index:
                raise InputError(f"tiny-imagenet: {ann}:{n}: unknown wnid {wnid!r}")
            path = images / name
            if Path(name).name != name or not path.is_file():
                raise InputError(f"tiny-imagenet: {ann}:{n}: image {name!r} not in {images}")
            samples.append((path, index[wnid]))
        return samples


class CamVidDataset(_ImageFiles):
    """CamVid in the SegNet layout; items ``(image uint8 (3, H, W), mask int64 (H, W))``.

    ``root/<split>/`` holds images (any extension Pillow reads) and ``root/<split>annot/``
    PNG labels with the same file stem. Mask values are class ids 0..10
    (:data:`CAMVID_CLASSES`); void (11) becomes ``IGNORE_INDEX`` (255), and 255 stays 255.
    Any other value raises InputError when the item is read.
    """

    def __init__(self, root: str | Path, split: str = "train", size: Size = None) -> None:
        base = _directory(root, "camvid")
        if split not in ("train", "val", "test"):
            raise InputError(f"camvid: split must be train, val or test, got {split!r}")
        images = _directory(base / split, f"camvid {split} images")
        annots = _directory(base / f"{split}annot", f"camvid {split} labels")
        labels = {p.stem: p for p in annots.iterdir() if p.suffix.lower() == ".png"}
        self.samples: list[tuple[Path, Path]] = []
        for img in _images_in(images):
            if img.stem not in labels:
                raise InputError(f"camvid: no label {annots / (img.stem + '.png')} for {img.name}")
            self.samples.append((img, labels[img.stem]))
        if not self.samples:
            raise InputError(f"camvid: no images in {images}")
        self.root, self.split, self.size = base, split, parse_size(size)
        self.classes = list(CAMVID_CLASSES)
        self.num_classes = len(CAMVID_CLASSES)

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        img_path, label_path = self.samples[index]
        image = read_image(img_path, self.size)
        raw = read_label(label_path, self.size)
        bad = ((raw > CAMVID_VOID) & (raw != IGNORE_INDEX)) | (raw < 0)
        if bool(bad.any()):
            value = int(raw[bad][0])
            raise InputError(f"camvid: label {label_path} holds value {value} (expected 0..11)")
        mask = torch.where(raw == CAMVID_VOID, IGNORE_INDEX, raw)
        if mask.shape != image.shape[1:]:
            raise InputError(
                f"camvid: label {label_path} is {tuple(mask.shape)}, image {tuple(image.shape[1:])}"
            )
        return image, mask
