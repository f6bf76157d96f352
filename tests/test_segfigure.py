"""The segmentation figure: originals, masks, reconstructions and a judge's maps."""

from __future__ import annotations

from pathlib import Path

import torch

from semcom.experiments.segfigure import colour_map, main, segmentation_rows
from semcom.experiments.sweep import synthetic_evalset


def test_colour_map_is_fixed_per_class() -> None:
    seg = torch.tensor([[0, 1], [2, 255]])
    rgb = colour_map(seg)
    assert rgb.shape == (3, 2, 2) and rgb.dtype == torch.uint8
    assert rgb[:, 0, 0].tolist() == [0, 0, 0] and rgb[:, 1, 1].tolist() == [255, 255, 255]
    assert not torch.equal(rgb[:, 0, 1], rgb[:, 1, 0])


def test_rows_and_command_line(tmp_path: Path, capsys) -> None:
    ev = synthetic_evalset(2, split="test")
    rows = segmentation_rows(ev.images, ev.masks, ["webp[rates=200]"], "shape-segmenter")
    labels = [r[0] for r in rows]
    assert labels[:2] == ["original", "ground truth"] and len(rows) == 5
    assert all(len(r[1]) == 2 for r in rows) and rows[3][2][0].endswith(" B")
    out = tmp_path / "seg.png"
    assert main(["--schemes", "jpeg[rates=300]", "--n", "2", "-o", str(out)]) == 0
    assert out.stat().st_size > 1000
    assert main(["--schemes", "jpeg", "--judge", "psnr", "-o", str(out)]) == 2
    assert "does not segment" in capsys.readouterr().err
