"""Startup stays light: which heavy packages each command imports (structure, not timing).

Each command runs in a fresh interpreter (``semcom.cli.main`` in-process, as the console
script does) and the test reads ``sys.modules`` afterwards. ``--help``, ``inspect`` and
``channels`` need no torch, matplotlib or Sionna; ``send`` / ``receive`` of a JPEG message
need torch (images are tensors, the judges are torch models) but neither matplotlib nor
Sionna. The timings themselves are measured by ``benchmarks/bench_startup.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytestmark = pytest.mark.usefixtures("one_thread")

NO_TORCH = ("torch", "matplotlib", "sionna", "tensorflow")
NO_PLOTS_NO_PHY = ("matplotlib", "sionna", "tensorflow")

_PROBE = """
import contextlib, io, json, sys
import semcom.cli
out = io.StringIO()
with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
    rc = semcom.cli.main(json.loads(sys.argv[1]))
print(json.dumps({"rc": rc, "out": out.getvalue(),
                  "modules": sorted({m.split(".")[0] for m in sys.modules})}))
"""


def _run(argv: list[str], cwd: Path) -> tuple[set[str], str]:
    """Top-level packages imported by ``semcom ARGV`` in a fresh interpreter, and its output."""
    p = subprocess.run(
        [sys.executable, "-c", _PROBE, json.dumps(argv)],
        cwd=cwd, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert p.returncode == 0, p.stderr
    res = json.loads(p.stdout.strip().splitlines()[-1])
    assert res["rc"] == 0, f"semcom {' '.join(argv)} failed: {res['out']}"
    return set(res["modules"]), res["out"]


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with ``img.png`` (64x64) and its ``jpeg.smc`` / ``patch.smc`` messages."""
    from semcom.schemes import create_scheme

    d = tmp_path_factory.mktemp("lazy")
    rng = np.random.default_rng(0)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    pixels = np.asarray(Image.fromarray(small).resize((64, 64), Image.Resampling.BICUBIC))
    Image.fromarray(pixels).save(d / "img.png")
    img = torch.from_numpy(pixels.copy()).permute(2, 0, 1).contiguous()
    (d / "jpeg.smc").write_bytes(create_scheme("jpeg").compress(img, 600))
    (d / "patch.smc").write_bytes(create_scheme("patch-mean").compress(img, 0.25))
    return d


@pytest.mark.parametrize(
    "argv",
    [["--help"], ["inspect", "jpeg.smc"], ["inspect", "patch.smc"], ["channels"]],
    ids=["help", "inspect-jpeg", "inspect-patch", "channels"],
)
def test_light_commands_import_no_torch(files: Path, argv: list[str]) -> None:
    modules, out = _run(argv, files)
    assert out.strip()
    assert not modules & set(NO_TORCH), sorted(modules & set(NO_TORCH))


def test_jpeg_send_and_receive_import_no_plotting_or_phy(files: Path) -> None:
    argv = ["send", "img.png", "--scheme", "jpeg", "--rate", "600", "-o", "sent.smc"]
    modules, _ = _run(argv, files)
    assert (files / "sent.smc").stat().st_size <= 600
    assert not modules & set(NO_PLOTS_NO_PHY), sorted(modules & set(NO_PLOTS_NO_PHY))

    modules, out = _run(["receive", "sent.smc"], files)
    assert "scheme: jpeg" in out
    assert not modules & set(NO_PLOTS_NO_PHY), sorted(modules & set(NO_PLOTS_NO_PHY))
