"""Real-data loaders on small fixtures written here (never real data)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from semcom.data import (
    CAMVID_CLASSES,
    DATASET_NAMES,
    IGNORE_INDEX,
    CamVidDataset,
    CocoCaptionsDataset,
    Flickr8kDataset,
    ImageFolderDataset,
    SyntheticDataset,
    TinyImageNetDataset,
    collate_captions,
    load_dataset,
    read_image,
)
from semcom.errors import InputError


def _save(path: Path, colour: tuple[int, int, int], hw: tuple[int, int] = (12, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.zeros((*hw, 3), dtype=np.uint8)
    arr[...] = colour
    fmt = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".webp": "WEBP", ".bmp": "BMP"}
    kw = {"lossless": True} if path.suffix.lower() == ".webp" else {}
    Image.fromarray(arr).save(path, format=fmt[path.suffix.lower()], **kw)


# ----------------------------------------------------------------------------- images


def test_read_image_modes_resize_and_errors(tmp_path: Path) -> None:
    gray = tmp_path / "g.png"
    Image.fromarray(np.full((5, 7), 77, dtype=np.uint8)).save(gray)
    img = read_image(gray)
    assert img.shape == (3, 5, 7) and img.dtype == torch.uint8 and int(img[1, 2, 3]) == 77
    rgba = tmp_path / "a.png"
    Image.fromarray(np.full((4, 4, 4), 200, dtype=np.uint8)).save(rgba)
    assert read_image(rgba, size=(8, 6)).shape == (3, 8, 6)
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + b"junk" * 10)
    for path in (bad, tmp_path / "missing.png", tmp_path):
        with pytest.raises(InputError):
            read_image(path)
    truncated = tmp_path / "t.jpg"
    _save(truncated, (10, 20, 30), (64, 64))
    truncated.write_bytes(truncated.read_bytes()[:200])
    with pytest.raises(InputError):
        read_image(truncated)
    with pytest.raises(InputError):
        read_image(gray, size=0)


# ------------------------------------------------------------------------ image folder


def test_image_folder(tmp_path: Path) -> None:
    _save(tmp_path / "cat" / "a.png", (255, 0, 0))
    _save(tmp_path / "dog" / "b.JPG", (0, 255, 0))
    _save(tmp_path / "dog" / "deep" / "c.webp", (0, 0, 255))
    (tmp_path / "dog" / "notes.txt").write_text("not an image")
    ds = ImageFolderDataset(tmp_path, size=8)
    assert ds.classes == ["cat", "dog"] and ds.num_classes == 2 and len(ds) == 3
    items = [ds[i] for i in range(3)]
    assert [y for _, y in items] == [0, 1, 1]
    assert all(x.shape == (3, 8, 8) and x.dtype == torch.uint8 for x, _ in items)
    assert int(items[0][0][0].float().mean()) > 240  # red stays red
    assert int(items[2][0][2].float().mean()) > 240  # lossless webp blue
    via = load_dataset("imagefolder", root=tmp_path, split="nonexistent-subdir", size=8)
    assert len(via) == 3


def test_image_folder_bad_roots(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        ImageFolderDataset(tmp_path / "missing")
    with pytest.raises(InputError):
        ImageFolderDataset(tmp_path)  # no class folders
    (tmp_path / "empty_class").mkdir()
    with pytest.raises(InputError):
        ImageFolderDataset(tmp_path)  # no images
    (tmp_path / "empty_class" / "x.png").write_bytes(b"not a png")
    ds = ImageFolderDataset(tmp_path)
    with pytest.raises(InputError):
        ds[0]


# ----------------------------------------------------------------------- tiny-imagenet


def _tiny_imagenet(base: Path) -> Path:
    root = base / "tiny-imagenet-200"
    wnids = ["n001", "n002"]
    root.mkdir(parents=True)
    (root / "wnids.txt").write_text("\n".join(wnids) + "\n")
    (root / "words.txt").write_text("n000\tentity\nn001\tgoldfish, Carassius\nn002\tgo-kart\n")
    for c, w in enumerate(wnids):
        for i in range(2):
            _save(root / "train" / w / "images" / f"{w}_{i}.JPEG", (100 * c, 50, 50), (64, 64))
        (root / "train" / w / f"{w}_boxes.txt").write_text("")
    _save(root / "val" / "images" / "val_0.JPEG", (0, 0, 0), (64, 64))
    _save(root / "val" / "images" / "val_1.JPEG", (0, 0, 0), (64, 64))
    (root / "val" / "val_annotations.txt").write_text(
        "val_0.JPEG\tn002\t0\t0\t10\t10\nval_1.JPEG\tn001\t1\t2\t3\t4\n"
    )
    return root


def test_tiny_imagenet(tmp_path: Path) -> None:
    root = _tiny_imagenet(tmp_path)
    train = TinyImageNetDataset(tmp_path, "train")  # parent folder is accepted
    assert len(train) == 4 and train.classes == ["n001", "n002"] and train.num_classes == 2
    assert train.class_names == ["goldfish", "go-kart"]
    assert [train[i][1] for i in range(4)] == [0, 0, 1, 1]
    val = load_dataset("tiny-imagenet", root=root, split="val", size=32)
    assert [val[i][1] for i in range(len(val))] == [1, 0]
    assert val[0][0].shape == (3, 32, 32)


def test_tiny_imagenet_errors(tmp_path: Path) -> None:
    root = _tiny_imagenet(tmp_path)
    with pytest.raises(InputError):
        TinyImageNetDataset(root, "test")
    ann = root / "val" / "val_annotations.txt"
    ann.write_text("val_0.JPEG\tn999\t0\t0\t1\t1\n")
    with pytest.raises(InputError, match="unknown wnid"):
        TinyImageNetDataset(root, "val")
    ann.write_text("just-one-field\n")
    with pytest.raises(InputError, match=":1:"):
        TinyImageNetDataset(root, "val")
    ann.write_text("../wnids.txt\tn001\n")
    with pytest.raises(InputError):
        TinyImageNetDataset(root, "val")
    (root / "wnids.txt").unlink()
    with pytest.raises(InputError, match="wnids"):
        TinyImageNetDataset(root, "train")
    with pytest.raises(InputError):
        TinyImageNetDataset(tmp_path / "nope")


# ----------------------------------------------------------------------------- camvid


def _label(path: Path, arr: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr.astype(np.uint8)).save(path)  # 2-D uint8 -> mode L


def test_camvid(tmp_path: Path) -> None:
    lab = np.arange(8 * 12).reshape(8, 12) % 12  # ids 0..11 (11 = void)
    _save(tmp_path / "train" / "a.png", (10, 20, 30), (8, 12))
    _save(tmp_path / "train" / "b.webp", (40, 50, 60), (8, 12))
    _label(tmp_path / "trainannot" / "a.png", lab)
    _label(tmp_path / "trainannot" / "b.png", np.full((8, 12), 3))
    ds = CamVidDataset(tmp_path, "train")
    assert len(ds) == 2 and ds.num_classes == len(CAMVID_CLASSES) == 11
    img, mask = ds[0]
    assert img.shape == (3, 8, 12) and img.dtype == torch.uint8
    assert mask.shape == (8, 12) and mask.dtype == torch.int64
    expected = torch.from_numpy(np.where(lab == 11, IGNORE_INDEX, lab)).long()
    assert torch.equal(mask, expected)
    assert tuple(ds[1][0][:, 0, 0].tolist()) == (40, 50, 60)  # lossless webp read
    small = load_dataset("camvid", root=tmp_path, split="train", size=(4, 6))
    img, mask = small[0]
    assert img.shape == (3, 4, 6) and mask.shape == (4, 6)
    assert set(mask.unique().tolist()) <= set(range(11)) | {IGNORE_INDEX}  # nearest, no blends


def test_camvid_errors(tmp_path: Path) -> None:
    with pytest.raises(InputError):
        CamVidDataset(tmp_path, "train")  # no train/
    _save(tmp_path / "val" / "a.png", (1, 2, 3), (4, 4))
    (tmp_path / "valannot").mkdir()
    with pytest.raises(InputError, match="no label"):
        CamVidDataset(tmp_path, "val")
    _label(tmp_path / "valannot" / "a.png", np.full((4, 4), 12))
    with pytest.raises(InputError, match="value 12"):
        CamVidDataset(tmp_path, "val")[0]
    _save(tmp_path / "valannot" / "a.png", (1, 1, 1), (4, 4))  # RGB label image
    with pytest.raises(InputError, match="single-channel"):
        CamVidDataset(tmp_path, "val")[0]
    with pytest.raises(InputError):
        CamVidDataset(tmp_path, "holdout")


# --------------------------------------------------------------------------- captions


def test_flickr8k(tmp_path: Path) -> None:
    names = [f"{i}.jpg" for i in range(30)]
    for i, n in enumerate(names):
        _save(tmp_path / "Images" / n, (i, i, i), (6, 6))
    lines = ["image,caption"]
    for n in names:
        lines += [f"{n},A dog runs .", f'{n},"A cat, sleeping ."', f"{n},two, commas, here"]
    (tmp_path / "captions.txt").write_text("\n".join(lines) + "\n")
    ds = Flickr8kDataset(tmp_path)
    assert len(ds) == 30
    img, caps = ds[0]
    assert img.shape == (3, 6, 6)
    assert caps == ["A dog runs .", "A cat, sleeping .", "two, commas, here"]
    parts = {s: load_dataset("flickr8k", root=tmp_path, split=s) for s in ("train", "val", "test")}
    files = [{p.name for p, _ in d.samples} for d in parts.values()]
    assert sum(len(f) for f in files) == 30 and set().union(*files) == set(names)
    assert len(files[0]) > len(files[1]) and len(files[0]) > len(files[2])
    x, c = collate_captions([ds[0], ds[1]])
    assert x.shape == (2, 3, 6, 6) and len(c) == 2 and len(c[1]) == 3


def test_flickr8k_errors(tmp_path: Path) -> None:
    (tmp_path / "Images").mkdir()
    with pytest.raises(InputError):
        Flickr8kDataset(tmp_path)  # no caption file
    (tmp_path / "captions.txt").write_text("img,text\na.jpg,hello\n")
    with pytest.raises(InputError, match="header"):
        Flickr8kDataset(tmp_path)
    (tmp_path / "captions.txt").write_text("image,caption\na.jpg\n")
    with pytest.raises(InputError, match=":2:"):
        Flickr8kDataset(tmp_path)
    (tmp_path / "captions.txt").write_text("image,caption\na.jpg,a missing image\n")
    ds = Flickr8kDataset(tmp_path)
    with pytest.raises(InputError):
        ds[0]
    with pytest.raises(InputError):
        Flickr8kDataset(tmp_path, split="dev")
    with pytest.raises(InputError):
        collate_captions([])


def test_coco_captions(tmp_path: Path) -> None:
    _save(tmp_path / "val2017" / "000001.jpg", (5, 5, 5), (6, 8))
    _save(tmp_path / "val2017" / "000002.jpg", (9, 9, 9), (6, 8))
    data = {
        "images": [
            {"id": 1, "file_name": "000001.jpg"},
            {"id": 2, "file_name": "000002.jpg"},
            {"id": 3, "file_name": "uncaptioned.jpg"},
        ],
        "annotations": [
            {"image_id": 2, "id": 10, "caption": "A bus. "},
            {"image_id": 1, "id": 11, "caption": "A tree."},
            {"image_id": 2, "id": 12, "caption": "A red bus."},
        ],
    }
    ann = tmp_path / "annotations" / "captions_val2017.json"
    ann.parent.mkdir()
    ann.write_text(json.dumps(data))
    ds = load_dataset("coco-captions", root=tmp_path, split="val", size=4)
    assert len(ds) == 2
    img, caps = ds[1]
    assert img.shape == (3, 4, 4) and caps == ["A bus.", "A red bus."]
    assert ds[0][1] == ["A tree."]
    ann.write_text("{not json")
    with pytest.raises(InputError):
        CocoCaptionsDataset(tmp_path, "val")
    data["annotations"].append({"image_id": 99, "caption": "ghost"})
    ann.write_text(json.dumps(data))
    with pytest.raises(InputError, match="unknown image"):
        CocoCaptionsDataset(tmp_path, "val")
    ann.write_text(json.dumps({"images": [{"id": 1, "file_name": "../x.jpg"}], "annotations": []}))
    with pytest.raises(InputError):
        CocoCaptionsDataset(tmp_path, "val")
    with pytest.raises(InputError):
        CocoCaptionsDataset(tmp_path, "train")  # no train files


# ---------------------------------------------------------------------------- factory


def test_load_dataset_factory(tmp_path: Path) -> None:
    assert set(DATASET_NAMES) == {
        "synthetic",
        "imagefolder",
        "tiny-imagenet",
        "camvid",
        "flickr8k",
        "coco-captions",
    }
    ds = load_dataset("synthetic", split="val", size=32, length=5)
    assert isinstance(ds, SyntheticDataset) and len(ds) == 5
    assert ds[0]["image"].shape == (3, 32, 32)
    with pytest.raises(InputError, match="unknown dataset"):
        load_dataset("imagenet-1k", root=tmp_path)
    for name in ("imagefolder", "tiny-imagenet", "camvid", "flickr8k", "coco-captions"):
        with pytest.raises(InputError):
            load_dataset(name)  # no root
        with pytest.raises(InputError):
            load_dataset(name, root=tmp_path / "missing")
    with pytest.raises(InputError):
        load_dataset("synthetic", size=(32, 32))
    with pytest.raises(InputError):
        load_dataset("camvid", root=tmp_path, bogus=1)
