"""How one label set reads as another: a judge trained on ImageNet or Cityscapes scoring
Tiny-ImageNet or CamVid images.

A class map is an int64 ``(C,)`` tensor: for each of the judge's ``C`` classes the
dataset class it means, or -1 (the judge's prediction is then taken among mapped classes
only, see :meth:`semcom.judges.base.Judge.labels`). :func:`class_map` builds one from
the two label lists, by equal class ids (an ImageNet wnid is a Tiny-ImageNet wnid) or
through a written table (:data:`CITYSCAPES_TO_CAMVID`), and refuses a map that leaves a
dataset class with no judge class.

Cityscapes train ids -> CamVid (SegNet's 11 classes), the table used here:

====================================================  ===============
Cityscapes train id (name)                            CamVid id (name)
====================================================  ===============
0 road                                                3 road
1 sidewalk                                            4 pavement
2 building                                            1 building
3 wall, 4 fence                                       7 fence
5 pole                                                2 pole
6 traffic light, 7 traffic sign                       6 sign/symbol
8 vegetation, 9 terrain                               5 tree
10 sky                                                0 sky
11 person                                             9 pedestrian
12 rider, 17 motorcycle, 18 bicycle                   10 bicyclist
13 car, 14 truck, 15 bus, 16 train                    8 car
====================================================  ===============
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from semcom.errors import InputError

__all__ = [
    "CITYSCAPES_CLASSES",
    "CITYSCAPES_TO_CAMVID",
    "class_map",
    "read_class_list",
    "read_mapping_file",
]

CITYSCAPES_CLASSES: tuple[str, ...] = (
    "road", "sidewalk", "building", "wall", "fence", "pole", "traffic light",
    "traffic sign", "vegetation", "terrain", "sky", "person", "rider", "car", "truck",
    "bus", "train", "motorcycle", "bicycle",
)  # fmt: skip
"""The 19 Cityscapes train-id class names; train id ``i`` is ``CITYSCAPES_CLASSES[i]``."""

CITYSCAPES_TO_CAMVID: dict[str, str] = {
    "road": "road", "sidewalk": "pavement", "building": "building", "wall": "fence",
    "fence": "fence", "pole": "pole", "traffic light": "sign/symbol",
    "traffic sign": "sign/symbol", "vegetation": "tree", "terrain": "tree", "sky": "sky",
    "person": "pedestrian", "rider": "bicyclist", "motorcycle": "bicyclist",
    "bicycle": "bicyclist", "car": "car", "truck": "car", "bus": "car", "train": "car",
}  # fmt: skip
"""Cityscapes class name -> CamVid class name (module docstring)."""

#: Known tables between named label sets: (judge classes, dataset classes) -> table.
_TABLES: list[tuple[frozenset[str], frozenset[str], dict[str, str]]] = []


def _register_table(judge: Sequence[str], dataset: Sequence[str], table: dict[str, str]) -> None:
    _TABLES.append((frozenset(judge), frozenset(dataset), table))


def _camvid() -> tuple[str, ...]:
    from semcom.data.folders import CAMVID_CLASSES

    return tuple(CAMVID_CLASSES)


def _tables() -> list[tuple[frozenset[str], frozenset[str], dict[str, str]]]:
    if not _TABLES:
        _register_table(CITYSCAPES_CLASSES, _camvid(), CITYSCAPES_TO_CAMVID)
    return _TABLES


def read_class_list(path: str | Path, what: str, max_lines: int = 100_000) -> list[str]:
    """One class id or name per line (blank lines ignored), InputError if unreadable."""
    p = Path(path).expanduser()
    try:
        if p.stat().st_size > 64 * max_lines:
            raise InputError(f"{what} {p}: too large for a class list")
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"{what} {p}: cannot read ({type(e).__name__}: {e})") from None
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    if not lines:
        raise InputError(f"{what} {p}: empty")
    return lines


def read_mapping_file(path: str | Path) -> dict[str, str]:
    """A JSON object ``{judge class: dataset class}`` (both strings)."""
    p = Path(path).expanduser()
    try:
        if p.stat().st_size > 16 * 1024 * 1024:
            raise InputError(f"class mapping {p}: too large")
        table = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise InputError(f"class mapping {p}: not readable JSON ({type(e).__name__})") from None
    if not isinstance(table, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in table.items()
    ):
        raise InputError(f"class mapping {p}: expected a JSON object of strings to strings")
    return table


def class_map(
    judge_classes: Sequence[str],
    dataset_classes: Sequence[str],
    *,
    table: Mapping[str, str] | None = None,
    judge: str = "judge",
    dataset: str = "dataset",
) -> torch.Tensor | None:
    """int64 ``(len(judge_classes),)``: the dataset class each judge class means (-1:
    none); None when the two lists are equal (no map needed).

    The table is ``table`` when given, else a known one between these two label sets,
    else equal ids. InputError when a dataset class is left without a judge class
    (naming up to five), or when ``table`` names classes neither list has.
    """
    jc, dc = [str(c) for c in judge_classes], [str(c) for c in dataset_classes]
    if jc == dc:
        return None
    where = {c: i for i, c in enumerate(dc)}
    if table is None:
        for js, ds, known in _tables():
            if js <= set(jc) and set(dc) <= ds:
                table = known
                break
    if table is not None:
        unknown = sorted(set(table) - set(jc))[:5]
        if unknown:
            raise InputError(f"class mapping of {judge}: {unknown} are not classes of the judge")
        out = [where.get(table.get(c, ""), -1) for c in jc]
    else:
        out = [where.get(c, -1) for c in jc]
    covered = {i for i in out if i >= 0}
    missing = [dc[i] for i in range(len(dc)) if i not in covered]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        raise InputError(
            f"the classes of {judge} cover {len(covered)} of the {len(dc)} labels of "
            f"{dataset}; missing: {shown} (give a class mapping)"
        )
    return torch.tensor(out, dtype=torch.int64)
