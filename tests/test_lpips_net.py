"""LPIPS of our own (semcom.metrics.lpips_net): the network's behaviour on random weights,
its weight files checked before loading, the judge, and -- where the project's shared
pretrained files are present -- agreement with the official lpips package's distances."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from semcom.errors import BitstreamError, InputError
from semcom.metrics.lpips_net import LPIPS, NETS, load_lpips

#: The pretrained files, where this checkout sits beside the project's shared data.
SHARED = Path(__file__).resolve().parents[2] / "shared" / "datasets" / "models"


def _save(net: LPIPS, folder: Path) -> None:
    sd = net.state_dict()
    trunk, heads = NETS[net.net][2]
    for name, prefix in ((trunk, "features."), (heads, "lin")):
        save_file({k: v.contiguous() for k, v in sd.items() if k.startswith(prefix)}, folder / name)


@pytest.mark.parametrize("name", ["alex", "vgg"])
def test_distance_properties_and_gradients(name: str) -> None:
    torch.manual_seed(0)
    net = LPIPS(name)
    for k in range(5):  # heads are non-negative in the real weights
        getattr(net, f"lin{k}").model[1].weight.data.abs_()
    x, y = torch.rand(2, 3, 48, 48), torch.rand(2, 3, 48, 48)
    d = net(x, y)
    assert d.shape == (2,) and (d > 0).all()
    assert torch.allclose(net(x, x), torch.zeros(2), atol=1e-6)
    assert torch.allclose(d, net(y, x))
    x.requires_grad_(True)
    net(x, y).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # usable as a training loss


def test_weights_round_trip_and_wrong_files_are_one_line(tmp_path: Path) -> None:
    torch.manual_seed(1)
    net = LPIPS("alex")
    _save(net, tmp_path)
    again = load_lpips("alex", tmp_path)
    x, y = torch.rand(1, 3, 32, 32), torch.rand(1, 3, 32, 32)
    assert torch.equal(net(x, y), again(x, y))
    vgg = LPIPS("vgg")  # VGG heads under the AlexNet head file name: wrong shapes
    save_file({k: v for k, v in vgg.state_dict().items() if k.startswith("lin")},
              tmp_path / NETS["alex"][2][1])  # fmt: skip
    with pytest.raises(BitstreamError) as info:
        load_lpips("alex", tmp_path)
    assert "\n" not in str(info.value)
    with pytest.raises(InputError, match="has no"):
        load_lpips("vgg", tmp_path / "nowhere")


def test_lpips_judge_on_the_command_line(tmp_path: Path, capsys) -> None:
    from semcom.cli import main

    _save(LPIPS("alex"), tmp_path)
    out = tmp_path / "r"
    args = ["bench", "--schemes", "jpeg[rates=500/1000]", "--channels", "ideal", "--n-images",
            "4", "--judge", f"lpips-alex={tmp_path}", "-o", str(out), "--no-progress"]  # fmt: skip
    assert main(args) == 0
    records = json.loads((out / "results.json").read_text())
    records = records["records"] if isinstance(records, dict) else records
    assert all("lpips-alex" in r["metrics"] and r["lower_is_better"] == ["lpips-alex"]
               for r in records)  # fmt: skip
    capsys.readouterr()
    assert main(["bench", "--judge", "lpips-vgg", "--n-images", "2", "-o", str(out)]) == 2
    assert "needs the folder" in capsys.readouterr().err


@pytest.mark.skipif(
    not (SHARED / "lpips_reference.json").is_file(),
    reason="the shared pretrained LPIPS files are not beside this checkout",
)
@pytest.mark.parametrize("name", ["alex", "vgg"])
def test_equal_to_the_official_lpips_on_the_reference_images(name: str) -> None:
    from semcom.imageio import load_image

    net = load_lpips(name, SHARED)
    for ref in json.loads((SHARED / "lpips_reference.json").read_text()):
        a = load_image(SHARED / ref["ref"]).float()[None] / 255
        b = load_image(SHARED / ref["img"]).float()[None] / 255
        assert abs(float(net(a, b)[0]) - ref[name]) <= 1e-4, ref
